# mmcv's transforms (LoadImageFromFile, Resize, RandomFlip ...) register into
# MMEngine's root TRANSFORMS, which mmfusion's registry falls back to.
import mmcv.transforms  # noqa: F401

from .audio import (
    AudioAddNoise,
    AudioFileNotFoundError,
    AudioFixLength,
    AudioLoadError,
    AudioLogMel,
    AudioRandomGain,
    AudioRandomTimeShift,
    LoadAudioFromFile,
)
from .formatting import PackMultiModalInputs
from .geometric import MultiModalPad, MultiModalRandomCrop, MultiModalRandomFlip, MultiModalResize
from .loading import (
    ImageFileNotFoundError,
    ImageLoadError,
    LoadAnnotations,
    LoadDepthFromFile,
    LoadImageFromFile,
)
from .modality import IfModalityPresent, ModalityDropout, RemoveModality
from .text import RandomCharNoise, RandomWordDropout, RandomWordSwap

__all__ = [
    'AudioAddNoise', 'AudioFileNotFoundError', 'AudioFixLength', 'AudioLoadError', 'AudioLogMel',
    'AudioRandomGain', 'AudioRandomTimeShift', 'IfModalityPresent', 'ImageFileNotFoundError',
    'ImageLoadError', 'LoadAnnotations', 'LoadAudioFromFile', 'LoadDepthFromFile',
    'LoadImageFromFile', 'ModalityDropout', 'MultiModalPad', 'MultiModalRandomCrop',
    'MultiModalRandomFlip', 'MultiModalResize', 'PackMultiModalInputs', 'RandomCharNoise',
    'RandomWordDropout', 'RandomWordSwap', 'RemoveModality'
]
