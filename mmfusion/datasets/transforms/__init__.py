# mmcv's transforms (LoadImageFromFile, Resize, RandomFlip ...) register into
# MMEngine's root TRANSFORMS, which mmfusion's registry falls back to.
import mmcv.transforms  # noqa: F401

from .formatting import PackMultiModalInputs

__all__ = ['PackMultiModalInputs']
