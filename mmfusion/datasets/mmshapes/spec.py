"""What every part of MMShapes agrees on: version, vocabulary, splits and ids.

Changing a value here changes the generated files, so it needs a new
:data:`MMSHAPES_VERSION` (a copy on disk records the version it was made with).
"""
from typing import Dict, Tuple

MMSHAPES_VERSION: int = 3

SHAPES: Tuple[str, ...] = ('circle', 'square', 'triangle')
COLORS: Dict[str, Tuple[int, int, int]] = {
    'red': (220, 40, 40),
    'green': (40, 170, 60),
    'blue': (40, 80, 220),
    'yellow': (230, 210, 40),
    'purple': (150, 60, 200),
    'cyan': (40, 200, 210),
}
COLOR_NAMES: Tuple[str, ...] = tuple(COLORS)
DEFAULT_MMSHAPES: Dict[str, int] = dict(
    num_train=2000, num_val=500, img_size=64, seed=0)

SPLITS: Tuple[str, ...] = ('train', 'val')
VAL_IMAGE_ID_OFFSET: int = 1_000_000

# Audio: one fixed pitch per colour, spaced far enough apart (>= x1.33) that a
# +-2% per-scene jitter never makes two colours confusable.
AUDIO_SAMPLE_RATE: int = 16000
AUDIO_DURATION: float = 1.0
COLOR_FREQS: Dict[str, float] = {
    'red': 300.0,
    'green': 420.0,
    'blue': 560.0,
    'yellow': 740.0,
    'purple': 980.0,
    'cyan': 1300.0,
}


def image_id_for(split: str, index: int) -> int:
    """Image id of the ``index``-th (0-based) scene of ``split``."""
    offset = VAL_IMAGE_ID_OFFSET if split == 'val' else 0
    return offset + index + 1


__all__ = ['AUDIO_DURATION', 'AUDIO_SAMPLE_RATE', 'COLORS', 'COLOR_FREQS', 'COLOR_NAMES',
           'DEFAULT_MMSHAPES', 'MMSHAPES_VERSION', 'SHAPES', 'SPLITS', 'VAL_IMAGE_ID_OFFSET',
           'image_id_for']
