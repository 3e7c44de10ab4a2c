"""Audio transforms: load a waveform, augment it, turn it into a log-mel spectrogram.

Every transform works on ``results[key]``, a float32 waveform of shape (T,)
(mono) or (C, T), with its rate in ``results['sample_rate']``, except
:class:`AudioLogMel`, which replaces the waveform by a log-mel spectrogram of
shape (num_mel_bins, T_frames): frequency first, like a one-channel image, so
``PackMultiModalInputs`` makes it (1, num_mel_bins, T_frames), the data
preprocessor stacks it to (B, 1, num_mel_bins, T_frames), and both
``AudioCNNEncoder`` and ``ASTEncoder`` take that directly.

Random transforms draw from ``np.random`` (which MMEngine seeds per worker),
so a pipeline is reproducible under ``np.random.seed``.
"""
import math
import os
import os.path as osp
import struct
import wave
from typing import Optional, Sequence, Tuple, Union

import numpy as np
from mmcv.transforms import BaseTransform

from mmfusion.errors import AudioFileNotFoundError, AudioLoadError
from mmfusion.registry import TRANSFORMS

try:
    import soundfile
except ImportError:  # the standard library's ``wave`` reads PCM WAV files
    soundfile = None


# ---------------------------------------------------------------------------
# Loading


def _check_wav_complete(path: str) -> None:
    """Raise if a RIFF/WAVE file's ``data`` chunk is shorter than its header says.

    libsndfile silently returns the frames that are there, so without this a
    truncated download would pass as a shorter clip.
    """
    size = osp.getsize(path)
    with open(path, 'rb') as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b'RIFF' or head[8:12] != b'WAVE':
            return  # not a RIFF WAV (FLAC, OGG, RF64 ...): nothing to check here
        while True:
            chunk = f.read(8)
            if len(chunk) < 8:
                return  # no data chunk: libsndfile reports that itself
            chunk_id, chunk_size = chunk[:4], struct.unpack('<I', chunk[4:])[0]
            if chunk_id == b'data':
                available = size - f.tell()
                # 0 and 0xFFFFFFFF mean "unknown length" (a streamed write).
                if chunk_size not in (0, 0xFFFFFFFF) and available < chunk_size:
                    raise AudioLoadError(
                        f'{path}: truncated WAV file: the header declares {chunk_size} bytes '
                        f'of audio data but the file holds only {available}')
                return
            f.seek(chunk_size + (chunk_size & 1), os.SEEK_CUR)  # chunks are word-aligned


def _read_soundfile(path: str) -> Tuple[np.ndarray, int]:
    _check_wav_complete(path)
    try:
        data, sample_rate = soundfile.read(path, dtype='float32', always_2d=True)
    except (RuntimeError, TypeError) as e:  # soundfile.LibsndfileError is a RuntimeError
        raise AudioLoadError(f'{path}: not a readable audio file (expected WAV or another '
                             f'format libsndfile decodes): {e}') from e
    return data.T, int(sample_rate)  # (T, C) -> (C, T)


def _pcm_to_float(raw: bytes, sample_width: int) -> np.ndarray:
    """Little-endian PCM bytes -> float32 in [-1, 1) (WAV's 8-bit PCM is unsigned)."""
    if sample_width == 1:
        return (np.frombuffer(raw, np.uint8).astype(np.float32) - 128.0) / 128.0
    if sample_width == 2:
        return np.frombuffer(raw, '<i2').astype(np.float32) / 32768.0
    if sample_width == 3:  # put the 3 bytes in the top of an int32
        padded = np.zeros((len(raw) // 3, 4), np.uint8)
        padded[:, 1:] = np.frombuffer(raw, np.uint8).reshape(-1, 3)
        return (padded.view('<i4')[:, 0].astype(np.float64) / 2.0**31).astype(np.float32)
    if sample_width == 4:
        return (np.frombuffer(raw, '<i4').astype(np.float64) / 2.0**31).astype(np.float32)
    raise ValueError(f'unsupported sample width of {sample_width} bytes')


def _read_wave(path: str) -> Tuple[np.ndarray, int]:
    try:
        with wave.open(path, 'rb') as f:
            channels, width = f.getnchannels(), f.getsampwidth()
            sample_rate, frames = f.getframerate(), f.getnframes()
            raw = f.readframes(frames)
    except (wave.Error, EOFError) as e:
        raise AudioLoadError(f'{path}: not a readable PCM WAV file (the standard library '
                             f'reader handles PCM WAV only; install soundfile for more '
                             f'formats): {e or "header ended early"}') from e
    if len(raw) < frames * channels * width:
        raise AudioLoadError(f'{path}: truncated WAV file: the header declares {frames} frames '
                             f'but only {len(raw) // (channels * width)} are present')
    try:
        data = _pcm_to_float(raw, width)
    except ValueError as e:
        raise AudioLoadError(f'{path}: {e}; expected 8, 16, 24 or 32-bit PCM') from e
    return data.reshape(-1, channels).T, int(sample_rate)


def resample_audio(wav: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample a (C, T) waveform from ``orig_sr`` to ``target_sr`` Hz.

    Uses ``scipy.signal.resample_poly`` when scipy is installed: a maintained
    polyphase resampler whose low-pass filter prevents aliasing when the rate
    goes down (torchaudio is not a dependency of mmfusion). Without scipy it
    falls back to numpy linear interpolation, which needs nothing but is not
    band-limited: fine for upsampling, slightly aliased when downsampling.
    """
    if orig_sr == target_sr:
        return wav
    try:
        from scipy.signal import resample_poly
    except ImportError:
        resample_poly = None
    if resample_poly is not None:
        g = math.gcd(orig_sr, target_sr)
        out = resample_poly(wav, target_sr // g, orig_sr // g, axis=-1)
    else:
        n_in = wav.shape[-1]
        n_out = int(round(n_in * target_sr / orig_sr))
        t_out = np.arange(n_out) * (orig_sr / target_sr)
        out = np.stack([np.interp(t_out, np.arange(n_in), ch) for ch in wav])
    return np.ascontiguousarray(out, dtype=np.float32)


@TRANSFORMS.register_module()
class LoadAudioFromFile(BaseTransform):
    """Load a waveform from an audio file.

    Args:
        key: results key holding the file path.
        out_key: results key to store the waveform in.
        sample_rate: the rate (Hz) the pipeline expects, or None to accept
            the file's. A file at another rate raises :class:`AudioLoadError`
            unless ``resample=True``.
        resample: resample files at another rate to ``sample_rate`` (see
            :func:`resample_audio`).
        mono: average the channels into one.
        backend: ``'auto'`` (soundfile if installed, else the standard
            library's ``wave``), ``'soundfile'`` or ``'wave'`` (PCM WAV only).

    Adds ``results[out_key]``: float32 np.ndarray, (T,) if ``mono`` else
    (C, T), integer PCM scaled to [-1, 1); and ``results['sample_rate']``.

    Raises :class:`AudioLoadError` (a ``ValueError``; its subclass
    :class:`AudioFileNotFoundError` is also a ``FileNotFoundError``) naming
    the file for a missing, empty, truncated, unreadable or undecodable file,
    one with no samples or with NaN/infinite samples, or one at the wrong (or
    a non-positive) sample rate.
    """

    def __init__(self, key: str = 'audio_path', out_key: str = 'audio',
                 sample_rate: Optional[int] = None, resample: bool = False, mono: bool = True,
                 backend: str = 'auto') -> None:
        if backend not in ('auto', 'soundfile', 'wave'):
            raise ValueError(f"LoadAudioFromFile: backend must be 'auto', 'soundfile' or "
                             f"'wave', got {backend!r}")
        if backend == 'soundfile' and soundfile is None:
            raise ImportError("LoadAudioFromFile: backend='soundfile' needs the soundfile "
                              "package (pip install soundfile)")
        if resample and sample_rate is None:
            raise ValueError('LoadAudioFromFile: resample=True needs a target sample_rate')
        self.key = key
        self.out_key = out_key
        self.sample_rate = None if sample_rate is None else int(sample_rate)
        self.resample = resample
        self.mono = mono
        self.backend = backend if backend != 'auto' else (
            'soundfile' if soundfile is not None else 'wave')

    def load(self, path: str) -> Tuple[np.ndarray, int]:
        """Read ``path`` into a float32 (C, T) array and its sample rate."""
        if not osp.isfile(path):
            raise AudioFileNotFoundError(f'{path}: audio file not found')
        if osp.getsize(path) == 0:
            raise AudioLoadError(f'{path}: empty file (0 bytes), expected a WAV audio file')
        try:
            data, sample_rate = (_read_soundfile if self.backend == 'soundfile'
                                 else _read_wave)(path)
        except OSError as e:  # no permission, a read error
            raise AudioLoadError(f'{path}: cannot read the audio file ({e})') from e
        if data.shape[-1] == 0:
            raise AudioLoadError(f'{path}: the audio file holds no samples')
        if sample_rate <= 0:
            raise AudioLoadError(f'{path}: the header declares a sample rate of {sample_rate} '
                                 f'Hz; expected a positive rate')
        # float WAVs can hold NaN or inf, which would reach the loss unnoticed
        if data.dtype.kind == 'f' and not np.isfinite(data).all():
            raise AudioLoadError(f'{path}: the audio file holds NaN or infinite samples; '
                                 f'expected finite values')
        return data, sample_rate

    def transform(self, results: dict) -> dict:
        path = results[self.key]
        wav, sample_rate = self.load(path)
        if self.sample_rate is not None and sample_rate != self.sample_rate:
            if not self.resample:
                raise AudioLoadError(
                    f'{path}: sample rate is {sample_rate} Hz, expected {self.sample_rate} Hz; '
                    f'convert the file or use LoadAudioFromFile(resample=True)')
            wav = resample_audio(wav, sample_rate, self.sample_rate)
            sample_rate = self.sample_rate
        if self.mono:
            wav = wav.mean(axis=0, dtype=np.float32)
        results[self.out_key] = np.ascontiguousarray(wav, dtype=np.float32)
        results['sample_rate'] = sample_rate
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(key={self.key!r}, out_key={self.out_key!r}, '
                f'sample_rate={self.sample_rate}, resample={self.resample}, mono={self.mono}, '
                f'backend={self.backend!r})')


# ---------------------------------------------------------------------------
# Augmentation


def _check_prob(name: str, prob: float) -> float:
    if not 0.0 <= prob <= 1.0:
        raise ValueError(f'{name}: prob must be in [0, 1], got {prob}')
    return float(prob)


def _range(name: str, arg: str, value: Union[float, Sequence[float]]) -> Tuple[float, float]:
    low, high = (value, value) if isinstance(value, (int, float)) else tuple(value)
    if low > high:
        raise ValueError(f'{name}: {arg} range must be (low, high) with low <= high, '
                         f'got {value!r}')
    return float(low), float(high)


@TRANSFORMS.register_module()
class AudioRandomGain(BaseTransform):
    """Scale the waveform by a random gain, uniform in decibels.

    Args:
        min_gain_db, max_gain_db: the range of the gain g (dB); the waveform
            is multiplied by ``10 ** (g / 20)``. No clipping is applied.
        prob: probability of applying it.
        key: results key of the waveform.

    Records the applied gain (0.0 when skipped) in ``results['audio_gain_db']``.
    """

    def __init__(self, min_gain_db: float = -6.0, max_gain_db: float = 6.0,
                 prob: float = 0.5, key: str = 'audio') -> None:
        self.min_gain_db, self.max_gain_db = _range(type(self).__name__, 'gain',
                                                    (min_gain_db, max_gain_db))
        self.prob = _check_prob(type(self).__name__, prob)
        self.key = key

    def transform(self, results: dict) -> dict:
        gain_db = 0.0
        if np.random.rand() < self.prob:
            gain_db = float(np.random.uniform(self.min_gain_db, self.max_gain_db))
            scale = np.float32(10.0 ** (gain_db / 20.0))
            results[self.key] = (results[self.key] * scale).astype(np.float32)
        results['audio_gain_db'] = gain_db
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(min_gain_db={self.min_gain_db}, '
                f'max_gain_db={self.max_gain_db}, prob={self.prob}, key={self.key!r})')


@TRANSFORMS.register_module()
class AudioAddNoise(BaseTransform):
    """Add white Gaussian noise at a random signal-to-noise ratio.

    Args:
        snr_db: the SNR in dB, a number or a (low, high) range to draw
            uniformly from. The noise is scaled so that
            ``10 * log10(mean(signal**2) / mean(noise**2))`` equals it.
        prob: probability of applying it.
        key: results key of the waveform.

    A silent waveform is left as is (no SNR is defined). Records the SNR
    used in ``results['audio_snr_db']`` (None when skipped).
    """

    def __init__(self, snr_db: Union[float, Sequence[float]] = (10.0, 30.0),
                 prob: float = 0.5, key: str = 'audio') -> None:
        self.snr_db = _range(type(self).__name__, 'snr_db', snr_db)
        self.prob = _check_prob(type(self).__name__, prob)
        self.key = key

    def transform(self, results: dict) -> dict:
        snr_db = None
        if np.random.rand() < self.prob:
            snr_db = float(np.random.uniform(*self.snr_db))
            wav = results[self.key]
            noise = np.random.standard_normal(wav.shape)
            signal_power = float(np.mean(np.square(wav, dtype=np.float64)))
            noise_power = float(np.mean(np.square(noise)))
            if signal_power > 0 and noise_power > 0:
                target = signal_power / 10.0 ** (snr_db / 10.0)
                noise *= math.sqrt(target / noise_power)
                results[self.key] = (wav + noise).astype(np.float32)
            else:
                snr_db = None
        results['audio_snr_db'] = snr_db
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(snr_db={self.snr_db}, prob={self.prob}, key={self.key!r})'


@TRANSFORMS.register_module()
class AudioRandomTimeShift(BaseTransform):
    """Shift the waveform in time by a random amount.

    Args:
        max_shift: the largest shift, in ``unit``; the shift is drawn
            uniformly from the integers in [-max, max] samples. Positive
            shifts delay the signal (move it later).
        unit: ``'fraction'`` (of the clip's length), ``'seconds'`` (needs
            ``results['sample_rate']``) or ``'samples'``.
        mode: ``'roll'`` wraps what leaves one end around to the other;
            ``'pad'`` drops it and fills the gap with zeros.
        prob: probability of applying it.
        key: results key of the waveform.

    Records the shift in samples in ``results['audio_shift']`` (0 when skipped).
    """

    def __init__(self, max_shift: float = 0.1, unit: str = 'fraction', mode: str = 'roll',
                 prob: float = 0.5, key: str = 'audio') -> None:
        name = type(self).__name__
        if unit not in ('fraction', 'seconds', 'samples'):
            raise ValueError(f"{name}: unit must be 'fraction', 'seconds' or 'samples', "
                             f'got {unit!r}')
        if mode not in ('roll', 'pad'):
            raise ValueError(f"{name}: mode must be 'roll' or 'pad', got {mode!r}")
        if max_shift < 0 or (unit == 'fraction' and max_shift > 1):
            raise ValueError(f'{name}: max_shift must be >= 0 (and <= 1 as a fraction), '
                             f'got {max_shift}')
        self.max_shift = max_shift
        self.unit = unit
        self.mode = mode
        self.prob = _check_prob(name, prob)
        self.key = key

    def _max_samples(self, results: dict, length: int) -> int:
        if self.unit == 'fraction':
            return int(self.max_shift * length)
        if self.unit == 'samples':
            return int(self.max_shift)
        if 'sample_rate' not in results:
            raise KeyError(f"{type(self).__name__}: unit='seconds' needs "
                           f"results['sample_rate'] (set by LoadAudioFromFile)")
        return int(self.max_shift * results['sample_rate'])

    def transform(self, results: dict) -> dict:
        shift = 0
        if np.random.rand() < self.prob:
            wav = results[self.key]
            length = wav.shape[-1]
            max_samples = min(self._max_samples(results, length), length)
            shift = int(np.random.randint(-max_samples, max_samples + 1))
            if self.mode == 'roll':
                wav = np.roll(wav, shift, axis=-1)
            else:
                out = np.zeros_like(wav)
                if shift >= 0:
                    out[..., shift:] = wav[..., :length - shift]
                else:
                    out[..., :shift] = wav[..., -shift:]
                wav = out
            results[self.key] = wav
        results['audio_shift'] = shift
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(max_shift={self.max_shift}, unit={self.unit!r}, '
                f'mode={self.mode!r}, prob={self.prob}, key={self.key!r})')


@TRANSFORMS.register_module()
class AudioFixLength(BaseTransform):
    """Pad or crop the waveform to a fixed number of samples, so clips stack.

    Args:
        num_samples: the length in samples; or
        length_s: the length in seconds (needs ``results['sample_rate']``).
            Exactly one of the two.
        crop: which part of a longer clip to keep: ``'start'``, ``'center'``
            or ``'random'`` (a training augmentation).
        pad: where a shorter clip goes in the output: at the ``'start'``
            (zeros appended), ``'center'``, or at a ``'random'`` offset.
        pad_value: the fill value.
        key: results key of the waveform.
    """
    _POSITIONS = ('start', 'center', 'random')

    def __init__(self, num_samples: Optional[int] = None, length_s: Optional[float] = None,
                 crop: str = 'start', pad: str = 'start', pad_value: float = 0.0,
                 key: str = 'audio') -> None:
        name = type(self).__name__
        if (num_samples is None) == (length_s is None):
            raise ValueError(f'{name} needs exactly one of num_samples and length_s')
        length = num_samples if num_samples is not None else length_s
        if length <= 0:
            raise ValueError(f'{name}: the length must be positive, got {length}')
        for arg, value in (('crop', crop), ('pad', pad)):
            if value not in self._POSITIONS:
                raise ValueError(f'{name}: {arg} must be one of {self._POSITIONS}, '
                                 f'got {value!r}')
        self.num_samples = None if num_samples is None else int(num_samples)
        self.length_s = length_s
        self.crop = crop
        self.pad = pad
        self.pad_value = pad_value
        self.key = key

    @staticmethod
    def _offset(position: str, slack: int) -> int:
        if position == 'start':
            return 0
        if position == 'center':
            return slack // 2
        return int(np.random.randint(0, slack + 1))

    def transform(self, results: dict) -> dict:
        target = self.num_samples
        if target is None:
            if 'sample_rate' not in results:
                raise KeyError(f"{type(self).__name__}: length_s needs results['sample_rate'] "
                               f'(set by LoadAudioFromFile); or give num_samples')
            target = int(round(self.length_s * results['sample_rate']))
        wav = results[self.key]
        length = wav.shape[-1]
        if length > target:
            start = self._offset(self.crop, length - target)
            wav = wav[..., start:start + target]
        elif length < target:
            start = self._offset(self.pad, target - length)
            out = np.full(wav.shape[:-1] + (target,), self.pad_value, dtype=wav.dtype)
            out[..., start:start + length] = wav
            wav = out
        results[self.key] = np.ascontiguousarray(wav)
        return results

    def __repr__(self) -> str:
        length = (f'num_samples={self.num_samples}' if self.num_samples is not None
                  else f'length_s={self.length_s}')
        return (f'{type(self).__name__}({length}, crop={self.crop!r}, pad={self.pad!r}, '
                f'pad_value={self.pad_value}, key={self.key!r})')


# ---------------------------------------------------------------------------
# Features

# Layout of the known extractors' 2-D output: True when it is (T, num_mel_bins).
_TIME_MAJOR = dict(ASTFeatureExtractor=True, Speech2TextFeatureExtractor=True,
                   WhisperFeatureExtractor=False)


def build_feature_extractor(cfg):
    """A ``transformers`` audio feature extractor from its defaults + kwargs.

    ``cfg`` is a class name (``'ASTFeatureExtractor'``), a dict with ``type``
    and constructor kwargs, or an extractor instance. Never calls
    ``from_pretrained``, so nothing is downloaded.
    """
    import transformers
    from transformers import SequenceFeatureExtractor

    if isinstance(cfg, SequenceFeatureExtractor):
        return cfg
    if isinstance(cfg, str):
        cfg = dict(type=cfg)
    if not isinstance(cfg, dict) or 'type' not in cfg:
        raise TypeError("AudioLogMel: feature_extractor must be a class name such as "
                        "'ASTFeatureExtractor', a dict(type=..., **kwargs) or an extractor, "
                        f'got {cfg!r}')
    cfg = dict(cfg)
    name = cfg.pop('type')
    cls = getattr(transformers, name, None) if isinstance(name, str) else name
    if not (isinstance(cls, type) and issubclass(cls, SequenceFeatureExtractor)):
        raise ValueError(f'AudioLogMel: {name!r} is not a transformers audio feature extractor '
                         f"class (e.g. 'ASTFeatureExtractor', 'WhisperFeatureExtractor')")
    return cls(**cfg)


@TRANSFORMS.register_module()
class AudioLogMel(BaseTransform):
    """Replace a waveform by a log-mel spectrogram from a ``transformers`` extractor.

    Args:
        feature_extractor: the extractor, built from its class defaults plus
            the given kwargs (see :func:`build_feature_extractor`), e.g.
            ``dict(type='ASTFeatureExtractor', num_mel_bins=64, max_length=100)``
            (Kaldi-style fbank as in the Audio Spectrogram Transformer, padded
            or cut to ``max_length`` frames of 10 ms) or
            ``dict(type='WhisperFeatureExtractor', chunk_length=1)`` (Whisper's
            log-mel, padded or cut to ``chunk_length`` seconds; the default of
            30 s gives 3000 frames).
        key: results key of the mono waveform (T,) (or (1, T)).
        out_key: results key for the spectrogram.
        extract_kwargs: extra keyword arguments for the extractor's call.

    Adds ``results[out_key]``: float32 np.ndarray (num_mel_bins, T_frames),
    frequency first whichever layout the extractor uses, the layout
    ``AudioCNNEncoder`` and ``ASTEncoder`` take.

    Raises ``ValueError`` when ``results['sample_rate']`` differs from the
    extractor's ``sampling_rate`` (resample with ``LoadAudioFromFile``) or
    the waveform has several channels.
    """

    def __init__(self, feature_extractor: Union[str, dict] = 'ASTFeatureExtractor',
                 key: str = 'audio', out_key: str = 'audio',
                 extract_kwargs: Optional[dict] = None) -> None:
        self.extractor = build_feature_extractor(feature_extractor)
        self.key = key
        self.out_key = out_key
        self.extract_kwargs = dict(extract_kwargs or {})
        self.input_name = self.extractor.model_input_names[0]

    @property
    def num_mel_bins(self) -> int:
        """Number of mel bins the extractor produces."""
        return int(getattr(self.extractor, 'num_mel_bins', None) or self.extractor.feature_size)

    def _where(self, results: dict) -> str:
        path = results.get('audio_path')
        return f' of {path}' if path else ''

    def transform(self, results: dict) -> dict:
        name = type(self.extractor).__name__
        wav = np.asarray(results[self.key], dtype=np.float32)
        if wav.ndim == 2 and wav.shape[0] == 1:
            wav = wav[0]
        if wav.ndim != 1:
            raise ValueError(f'AudioLogMel: needs a mono waveform (T,), got shape {wav.shape}'
                             f'{self._where(results)}; use LoadAudioFromFile(mono=True)')
        expected = int(self.extractor.sampling_rate)
        sample_rate = results.get('sample_rate')
        if sample_rate is None:
            raise KeyError("AudioLogMel: results['sample_rate'] is missing; load the audio "
                           'with LoadAudioFromFile first')
        if int(sample_rate) != expected:
            raise ValueError(f'AudioLogMel: the waveform{self._where(results)} is at '
                             f'{sample_rate} Hz but the {name} expects {expected} Hz; use '
                             f'LoadAudioFromFile(sample_rate={expected}, resample=True)')
        feats = self.extractor(wav, sampling_rate=expected, return_tensors='np',
                               **self.extract_kwargs)[self.input_name]
        feats = np.asarray(feats[0], dtype=np.float32)  # drop the batch axis
        n_mels = self.num_mel_bins
        time_major = _TIME_MAJOR.get(name)
        if time_major is None:  # an extractor not in the table: find the mel axis
            if feats.ndim != 2 or n_mels not in feats.shape:
                raise ValueError(f'AudioLogMel: cannot tell the mel axis of the {name} output '
                                 f'of shape {feats.shape} (expected {n_mels} mel bins)')
            time_major = feats.shape[0] != n_mels
        if time_major:
            feats = feats.T
        results[self.out_key] = np.ascontiguousarray(feats)
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(feature_extractor={type(self.extractor).__name__}, '
                f'key={self.key!r}, out_key={self.out_key!r})')
