"""Corruptions of each modality at severity levels 0..10, as pipeline transforms.

The noise generators of MultiBench (``robustness/*_robust.py``) act on the raw
data, before any feature extraction; so do these: an image is corrupted in
pixel units right after it is loaded, a waveform before its log-mel
spectrogram is taken, a question before it is tokenised. Level 0 is the clean
input; level ``L`` has severity ``s = L / 10`` and every corruption maps
``s`` to its own parameter (listed in :data:`CORRUPTIONS` and in
docs/robustness.md).

Randomness is drawn from ``np.random.default_rng([seed, level,
sample_idx])``, so a level of a split is the same corruption on every run.
"""
from typing import Callable, Dict, List, Optional

import numpy as np
from mmcv.transforms import BaseTransform

from mmfusion.errors import ConfigError
from mmfusion.registry import TRANSFORMS

NUM_LEVELS = 11  # levels 0 (clean) .. 10


def _range_of(x: np.ndarray) -> float:
    """The value range of an array: the dtype's for integers (255 for
    uint8, 65535 for 16-bit depth), the observed one for floats."""
    if np.issubdtype(x.dtype, np.integer):
        return float(np.iinfo(x.dtype).max)
    span = float(x.max() - x.min()) if x.size else 0.0
    return span if span > 0 else 1.0


def _as_input_dtype(out: np.ndarray, like: np.ndarray) -> np.ndarray:
    if np.issubdtype(like.dtype, np.integer):
        info = np.iinfo(like.dtype)
        return np.clip(np.rint(out), info.min, info.max).astype(like.dtype)
    return out.astype(like.dtype)


# ---------------------------------------------------------------- image-like
# Arrays (H, W) or (H, W, C) as the loaders give them.
def image_gaussian_noise(x: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    """Additive Gaussian noise, std = 0.3 * s * range."""
    out = x.astype(np.float64) + rng.normal(0.0, 0.3 * s * _range_of(x), x.shape)
    return _as_input_dtype(out, x)  # integer images are clipped to their dtype's range


def image_blur(x: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian blur, sigma = 0.06 * s * min(H, W) pixels."""
    import cv2
    sigma = 0.06 * s * min(x.shape[:2])
    if sigma <= 0:
        return x
    out = cv2.GaussianBlur(x.astype(np.float32), (0, 0), sigmaX=sigma, sigmaY=sigma,
                           borderType=cv2.BORDER_REFLECT)
    return _as_input_dtype(out.reshape(x.shape), x)


def image_occlusion(x: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    """A black square at a random place covering a fraction 0.6 * s of the image."""
    h, w = x.shape[:2]
    side = int(round(np.sqrt(0.6 * s * h * w)))
    if side <= 0:
        return x
    side_h, side_w = min(side, h), min(side, w)
    top = int(rng.integers(0, h - side_h + 1))
    left = int(rng.integers(0, w - side_w + 1))
    out = x.copy()
    out[top:top + side_h, left:left + side_w] = 0
    return out


def image_jpeg(x: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    """JPEG compression at quality 100 - 98 * s (OpenCV's encoder); 8-bit images only."""
    import cv2
    if s <= 0:
        return x
    if x.dtype != np.uint8:
        raise ConfigError(f'the jpeg corruption needs an 8-bit image, got {x.dtype}; '
                          'leave it out for this modality (--corruptions)')
    quality = int(round(100 - 98 * s))
    ok, buf = cv2.imencode('.jpg', x, [cv2.IMWRITE_JPEG_QUALITY, quality])
    flag = cv2.IMREAD_UNCHANGED
    out = cv2.imdecode(buf, flag)
    return out.reshape(x.shape)


def image_brightness(x: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    """Brightness shift of +0.6 * s * range (clipped)."""
    span = _range_of(x)
    return _as_input_dtype(np.clip(x.astype(np.float64) + 0.6 * s * span, 0, span), x)


def image_contrast(x: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    """Contrast scaled by 1 - 0.95 * s towards the image's mean."""
    mean = x.astype(np.float64).mean()
    return _as_input_dtype(mean + (x.astype(np.float64) - mean) * (1 - 0.95 * s), x)


# --------------------------------------------------------------------- audio
# Waveforms (T,) or (1, T), before the spectrogram.
def audio_white_noise(x: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    """White noise at SNR = 40 - 50 * s dB (level 1: 35 dB ... level 10: -10 dB)."""
    if s <= 0:
        return x
    snr_db = 40.0 - 50.0 * s
    power = float(np.mean(np.square(x, dtype=np.float64))) or 1e-12
    noise = rng.normal(0.0, np.sqrt(power / 10 ** (snr_db / 10)), x.shape)
    return (x + noise).astype(x.dtype)


def audio_time_dropout(x: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    """Silence a random fraction 0.9 * s of the 50 ms chunks (of 20 per clip at least)."""
    n = x.shape[-1]
    chunks = max(20, n // 800)  # 800 samples = 50 ms at 16 kHz
    drop = rng.random(chunks) < 0.9 * s
    bounds = np.linspace(0, n, chunks + 1).astype(int)
    out = x.copy()
    for i in np.flatnonzero(drop):
        out[..., bounds[i]:bounds[i + 1]] = 0
    return out


# ---------------------------------------------------------------------- text
_LETTERS = 'abcdefghijklmnopqrstuvwxyz'


def text_typos(x: str, s: float, rng: np.random.Generator) -> str:
    """Each letter gets a typo with probability 0.4 * s: substituted, deleted,
    or swapped with the next one (equally likely)."""
    chars: List[str] = list(x)
    out: List[str] = []
    i = 0
    while i < len(chars):
        c = chars[i]
        if c.isalpha() and rng.random() < 0.4 * s:
            kind = int(rng.integers(3))
            if kind == 0:
                out.append(_LETTERS[int(rng.integers(26))])
            elif kind == 2 and i + 1 < len(chars):
                out += [chars[i + 1], c]
                i += 1
            # kind 1 (or a swap at the end): the letter is dropped
        else:
            out.append(c)
        i += 1
    return ''.join(out)


def text_word_dropout(x: str, s: float, rng: np.random.Generator) -> str:
    """Each word dropped with probability 0.8 * s."""
    words = x.split()
    kept = [w for w in words if rng.random() >= 0.8 * s]
    return ' '.join(kept)


def text_word_shuffle(x: str, s: float, rng: np.random.Generator) -> str:
    """A random subset of round(s * n) of the n word positions permuted."""
    words = x.split()
    k = int(round(s * len(words)))
    if k < 2:
        return x
    idx = rng.choice(len(words), size=k, replace=False)
    perm = rng.permutation(idx)
    out = list(words)
    for src, dst in zip(idx, perm):
        out[dst] = words[src]
    return ' '.join(out)


# ------------------------------------------------------------------- vectors
def vector_gaussian_noise(x: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise with std = s * the vector's own std."""
    x = np.asarray(x)
    std = float(x.std()) or 1.0
    return (x + rng.normal(0.0, s * std, x.shape)).astype(x.dtype)


#: kind of data -> corruption name -> function(x, severity, rng) -> x
CORRUPTIONS: Dict[str, Dict[str, Callable]] = {
    'image': dict(gaussian_noise=image_gaussian_noise, blur=image_blur,
                  occlusion=image_occlusion, jpeg=image_jpeg,
                  brightness=image_brightness, contrast=image_contrast),
    'audio': dict(white_noise=audio_white_noise, time_dropout=audio_time_dropout),
    'text': dict(typos=text_typos, word_dropout=text_word_dropout,
                 word_shuffle=text_word_shuffle),
    'vector': dict(gaussian_noise=vector_gaussian_noise),
}


def data_kind(modality: str) -> str:
    """The kind of data a modality name stands for: ``image`` for image-like
    names (image, depth, rgb, ...), ``audio``, ``text`` (text, question,
    caption), else ``vector``."""
    name = modality.lower()
    if any(k in name for k in ('image', 'img', 'depth', 'rgb', 'thermal', 'mask')):
        return 'image'
    if any(k in name for k in ('audio', 'wav', 'sound', 'speech')):
        return 'audio'
    if any(k in name for k in ('text', 'question', 'caption', 'query', 'sentence')):
        return 'text'
    return 'vector'


@TRANSFORMS.register_module()
class Corrupt(BaseTransform):
    """Corrupt ``results[key]`` with a named corruption at a level 0..10.

    Args:
        corruption: a name in :data:`CORRUPTIONS` for ``kind``.
        kind: ``'image'`` (arrays (H, W[, C]), any dtype), ``'audio'``
            (waveforms (T,) or (1, T)), ``'text'`` (strings) or ``'vector'``.
        key: the results key, e.g. ``'img'``, ``'audio'``, ``'question'``.
        level: 0 (no change) .. 10.
        seed: with the level and ``results['sample_idx']``, fixes the noise.

    Output: ``results[key]`` replaced by the corrupted value, same type,
    shape (text: a string) and dtype. For text, a retrieval sample's
    ``captions`` list (what a ``DualEncoder`` embeds in test mode) is
    corrupted as well.
    """

    def __init__(self, corruption: str, kind: str, key: str, level: int, seed: int = 0) -> None:
        if kind not in CORRUPTIONS:
            raise ConfigError(f'Corrupt: kind must be one of {sorted(CORRUPTIONS)}, got {kind!r}')
        if corruption not in CORRUPTIONS[kind]:
            raise ConfigError(f'Corrupt: no {corruption!r} corruption for {kind} data; '
                              f'choose from {sorted(CORRUPTIONS[kind])}')
        if not 0 <= level < NUM_LEVELS:
            raise ConfigError(f'Corrupt: level must be in 0..{NUM_LEVELS - 1}, got {level}')
        self.fn = CORRUPTIONS[kind][corruption]
        self.corruption, self.kind, self.key, self.level, self.seed = (
            corruption, kind, key, int(level), int(seed))

    def transform(self, results: dict) -> dict:
        if self.level == 0:
            return results
        if self.key not in results:
            raise ConfigError(f'Corrupt({self.corruption}): the pipeline results have no '
                              f'{self.key!r} at this point (keys: {sorted(results)})')
        idx = int(results.get('sample_idx', 0))
        rng = np.random.default_rng([self.seed, self.level, idx])
        results[self.key] = self.fn(results[self.key], self.level / 10.0, rng)
        if self.kind == 'text' and isinstance(results.get('captions'), (list, tuple)):
            # a retrieval sample in test mode ranks all its captions (the
            # caption datasets carry them beside the packed first one): they
            # are the text the model reads, so they are corrupted too
            results['captions'] = [self.fn(c, self.level / 10.0, rng)
                                   for c in results['captions']]
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}({self.corruption}, kind={self.kind}, key={self.key!r}, '
                f'level={self.level})')


def insert_position(transforms: List[object], kind: str, key: str) -> int:
    """Where in a pipeline (a list of built transforms) a corruption of
    ``results[key]`` goes: audio right after its loader (the waveform, before
    a spectrogram is taken); everything else right before
    ``PackMultiModalInputs`` (after resizing, so in the model's pixels)."""
    names = [type(t).__name__ for t in transforms]
    if kind == 'audio':
        for i, name in enumerate(names):
            if name.startswith('LoadAudio'):
                return i + 1
        raise ConfigError('audio corruptions act on the waveform, but the test pipeline has '
                          f'no LoadAudio* transform (it has {names})')
    for i, name in enumerate(names):
        if name.startswith('Pack'):
            return i
    raise ConfigError(f'the test pipeline has no Pack* transform to corrupt before ({names})')


def pack_keys(transforms: List[object]) -> Dict[str, str]:
    """modality -> results key, from the pipeline's ``PackMultiModalInputs``."""
    for t in transforms:
        if type(t).__name__.startswith('Pack') and hasattr(t, 'inputs'):
            return dict(t.inputs)
    raise ConfigError('the test pipeline has no PackMultiModalInputs(inputs=...) naming the '
                      'modalities')


def corrupt_pipeline(transforms: List[object], modality: str, corruption: str, level: int,
                     seed: int = 0, kind: Optional[str] = None) -> List[object]:
    """A copy of ``transforms`` with a :class:`Corrupt` of ``modality`` inserted."""
    key = pack_keys(transforms).get(modality)
    if key is None:
        raise ConfigError(f'modality {modality!r} is not packed by the test pipeline')
    kind = kind or data_kind(modality)
    t = Corrupt(corruption, kind, key, level, seed)
    out = list(transforms)
    out.insert(insert_position(out, kind, key), t)
    return out


__all__ = ['CORRUPTIONS', 'NUM_LEVELS', 'Corrupt', 'corrupt_pipeline', 'data_kind',
           'insert_position', 'pack_keys']
