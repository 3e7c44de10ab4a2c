"""mmfusion: a registry-based framework for multimodal deep learning."""
from .utils.compat import apply_mmengine_compat
from .version import __version__, version_info

# Importing mmfusion makes ``mmfusion::`` config paths and mmengine checkpoints
# work on current setuptools/torch; see ``mmfusion/utils/compat.py``.
apply_mmengine_compat()

__all__ = ['__version__', 'version_info']
