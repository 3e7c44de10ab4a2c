"""Compatibility fixes for mmengine 0.10.x on current setuptools, torch and
transformers.

Two things break there, and both are fixed narrowly instead of by
downgrading packages or disabling safety checks (a third, start-up time, is
described at :func:`import_mmengine_optim`):

1. mmengine resolves ``pkg::path`` config inheritance (``_base_ =
   'mmfusion::vqa/mmshapes_vqa.py'``) with ``pkg_resources``, which
   setuptools >= 81 no longer ships, and only for a fixed list of OpenMMLab
   packages. We register ``mmfusion`` and, when ``pkg_resources`` is missing,
   give mmengine's config module the same lookups built on ``importlib``.
2. torch >= 2.6 loads checkpoints with ``weights_only=True``, and mmengine's
   checkpoints hold objects it refuses. mmfusion's checkpoints hold only
   plain data, and mmengine loads local checkpoints through mmfusion's
   weights-only loader and writes files atomically (see
   :mod:`mmfusion.engine.checkpoint`).
"""
import importlib.util
import os.path as osp
import sys


def _installed_path(package: str) -> str:
    """Directory of an importable package, like mmengine's ``get_installed_path``."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(f'package {package!r} is not installed')
    return osp.dirname(spec.origin)


def _is_installed(package: str) -> bool:
    return importlib.util.find_spec(package) is not None


def _mmfusion_config_root() -> str:
    """The source tree's configs/ in a checkout (editable install), else the
    copy a wheel ships in ``mmfusion/.mim/configs``."""
    pkg = _installed_path('mmfusion')
    repo = osp.dirname(pkg)
    if osp.isfile(osp.join(repo, 'setup.py')) and osp.isdir(osp.join(repo, 'configs')):
        return osp.join(repo, 'configs')
    return osp.join(pkg, '.mim', 'configs')


def _build_adafactor(params, **kwargs):
    """transformers' ``Adafactor``, imported when a config builds it (the
    first argument is named ``params``: MMEngine passes the parameters under
    the name of the optimizer's first argument)."""
    from transformers import Adafactor
    return Adafactor(params, **kwargs)


def import_mmengine_optim() -> None:
    """Import ``mmengine.optim`` without importing transformers.

    At import, mmengine registers transformers' ``Adafactor`` with ``from
    transformers import Adafactor``, which loads ``transformers.optimization``
    and through it the trainer utilities, ``peft`` and transformers' model
    code: 2.4 s of the 4.5 s that ``import mmfusion.apis`` took, paid by
    every tool, test and inference server whether it uses Adafactor or not.
    Here the import runs with ``transformers`` marked unimportable (mmengine
    then skips the registration), and ``Adafactor`` is registered instead as
    a builder that imports transformers when a config asks for it: the same
    ``optimizer=dict(type='Adafactor', ...)`` keeps working. Nothing changes
    when transformers or mmengine.optim is already imported.
    """
    if 'mmengine.optim' in sys.modules or 'transformers' in sys.modules \
            or not _is_installed('transformers'):
        return
    sys.modules['transformers'] = None  # ``import transformers`` -> ImportError
    try:
        import mmengine.optim  # noqa: F401
    finally:
        del sys.modules['transformers']
    from mmengine.registry import OPTIMIZERS
    if 'Adafactor' not in OPTIMIZERS.module_dict:
        OPTIMIZERS.register_module(name='Adafactor', module=_build_adafactor)


def apply_mmengine_compat() -> None:
    """Idempotently apply the fixes described in the module docstring."""
    import_mmengine_optim()
    from mmengine.config import config as mm_config
    from mmengine.config import utils as mm_config_utils

    mm_config_utils.MODULE2PACKAGE.setdefault('mmfusion', 'mmfusion')
    if not getattr(mm_config, '_mmfusion_patched', False):
        # mmengine looks a ``pkg::name`` config up in the package's model index,
        # then in ``.mim/configs``; mmfusion keeps no model index, so its configs
        # resolve directly (installed copy first, then the source tree).
        original_cfg_path = mm_config._get_external_cfg_path

        def external_cfg_path(package_path: str, cfg_name: str) -> str:
            if osp.basename(package_path) != 'mmfusion':
                return original_cfg_path(package_path, cfg_name)
            path = osp.join(_mmfusion_config_root(), cfg_name)
            if not osp.isfile(path):
                raise FileNotFoundError(
                    f'mmfusion has no config {cfg_name!r} (looked for {path})')
            return path

        mm_config._get_external_cfg_path = external_cfg_path
        try:
            import pkg_resources  # noqa: F401
        except ImportError:
            mm_config.get_installed_path = _installed_path
            mm_config.is_installed = _is_installed
        mm_config._mmfusion_patched = True

    from ..engine.checkpoint import use_safe_checkpoint_io
    use_safe_checkpoint_io()
