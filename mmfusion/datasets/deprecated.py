"""Old dataset names, kept for one release as deprecated aliases.

Each old name is registered in ``DATASETS`` (so ``type='OldName'`` in a
config still builds) and importable from :mod:`mmfusion.datasets`. The alias
is a subclass of the new class that only warns when built: it reads the same
files, takes the same arguments and gives the same samples and errors.
"""
import logging
import warnings
from typing import Dict, Type

from mmengine.logging import print_log

from mmfusion.registry import DATASETS

from .classification import ListClsDataset
from .detection import CocoDetDataset
from .segmentation import CocoRefSegDataset, ListSegDataset

# old name -> its replacement under the <Format><Task>Dataset rule
RENAMED_DATASETS: Dict[str, type] = {
    'MultiModalClsDataset': ListClsDataset,
    'CocoMultiModalDataset': CocoDetDataset,
    'SegMultiModalDataset': ListSegDataset,
    'RefSegDataset': CocoRefSegDataset,
}


def deprecation_message(old_name: str, new_name: str) -> str:
    """The warning a deprecated dataset name gives when it is built."""
    return (f"Dataset '{old_name}' is deprecated and will be removed in the next release; use "
            f"'{new_name}' (type='{new_name}' in configs), which takes the same arguments.")


def deprecated_alias(old_name: str, new_cls: type) -> Type:
    """A subclass of ``new_cls`` named ``old_name`` that warns once per build.

    The warning goes both to the MMEngine log (``print_log``, level WARNING,
    so it shows in training logs) and to Python's ``warnings`` as a
    ``DeprecationWarning`` (so tests and ``-W error`` can catch it).
    """
    message = deprecation_message(old_name, new_cls.__name__)

    def __init__(self, *args, **kwargs) -> None:
        print_log(message, logger='current', level=logging.WARNING)
        warnings.warn(message, DeprecationWarning, stacklevel=2)
        super(alias, self).__init__(*args, **kwargs)

    alias = type(old_name, (new_cls, ), {
        '__init__': __init__,
        '__doc__': f'Deprecated alias of :class:`{new_cls.__name__}`; use that name.',
        '__module__': __name__,
        '__qualname__': old_name,
    })
    return alias


def register_deprecated_aliases() -> Dict[str, type]:
    """Register every old name in ``DATASETS``; return name -> alias class."""
    aliases = {}
    for old_name, new_cls in RENAMED_DATASETS.items():
        aliases[old_name] = deprecated_alias(old_name, new_cls)
        DATASETS.register_module(name=old_name, module=aliases[old_name])
    return aliases


_ALIASES = register_deprecated_aliases()
MultiModalClsDataset = _ALIASES['MultiModalClsDataset']
CocoMultiModalDataset = _ALIASES['CocoMultiModalDataset']
SegMultiModalDataset = _ALIASES['SegMultiModalDataset']
RefSegDataset = _ALIASES['RefSegDataset']

__all__ = ['CocoMultiModalDataset', 'MultiModalClsDataset', 'RENAMED_DATASETS', 'RefSegDataset',
           'SegMultiModalDataset', 'deprecated_alias', 'deprecation_message']
