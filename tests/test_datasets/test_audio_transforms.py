"""Audio loading, augmentation and log-mel transforms, on WAV files written here."""
import re
import sys
import wave

import numpy as np
import pytest
import soundfile

from mmfusion.datasets.transforms.audio import (
    AudioAddNoise,
    AudioFileNotFoundError,
    AudioFixLength,
    AudioLoadError,
    AudioLogMel,
    AudioRandomGain,
    AudioRandomTimeShift,
    LoadAudioFromFile,
)
from mmfusion.registry import TRANSFORMS

SR = 16000
BACKENDS = ('soundfile', 'wave')


def tone(freq: float, seconds: float = 1.0, sr: int = SR, amp: float = 0.5) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * freq * np.arange(int(sr * seconds)) / sr)).astype(
        np.float32)


def write_wav_stdlib(path, samples: np.ndarray, sr: int = SR, channels: int = 1) -> None:
    """int16 PCM through the standard library, as MMShapes writes its audio."""
    with wave.open(str(path), 'wb') as f:
        f.setnchannels(channels)
        f.setsampwidth(2)
        f.setframerate(sr)
        f.writeframes(samples.astype('<i2').tobytes())


def int16_tone(freq: float = 440.0) -> np.ndarray:
    return np.round(tone(freq) * 32767).astype(np.int16)


def load(path, **kwargs) -> dict:
    return LoadAudioFromFile(**kwargs)(dict(audio_path=str(path)))


# ---------------------------------------------------------------------------
# LoadAudioFromFile


@pytest.mark.parametrize('backend', BACKENDS)
def test_load_int16_wav_both_writers(tmp_path, backend):
    pcm = int16_tone()
    write_wav_stdlib(tmp_path / 'std.wav', pcm)
    soundfile.write(tmp_path / 'sf.wav', pcm, SR, subtype='PCM_16')
    for name in ('std.wav', 'sf.wav'):
        results = load(tmp_path / name, sample_rate=SR, backend=backend)
        assert results['sample_rate'] == SR
        wav = results['audio']
        assert wav.shape == (SR,) and wav.dtype == np.float32
        np.testing.assert_array_equal(wav, pcm.astype(np.float32) / 32768)
        assert -1.0 <= wav.min() and wav.max() < 1.0


@pytest.mark.parametrize('backend', BACKENDS)
def test_load_stereo_mono_and_sample_widths(tmp_path, backend):
    left, right = int16_tone(300.0), int16_tone(700.0)
    write_wav_stdlib(tmp_path / 'st.wav', np.stack([left, right], 1).reshape(-1), channels=2)
    both = load(tmp_path / 'st.wav', mono=False, backend=backend)['audio']
    assert both.shape == (2, SR)
    np.testing.assert_array_equal(both[1], right / np.float32(32768))
    mono = load(tmp_path / 'st.wav', backend=backend)['audio']
    np.testing.assert_allclose(mono, both.mean(0), atol=1e-7)
    # 24-bit and unsigned 8-bit PCM decode to the same [-1, 1) scale.
    x = tone(440.0)
    soundfile.write(tmp_path / 'p24.wav', x, SR, subtype='PCM_24')
    soundfile.write(tmp_path / 'u8.wav', x, SR, subtype='PCM_U8')
    np.testing.assert_allclose(load(tmp_path / 'p24.wav', backend=backend)['audio'], x,
                               atol=2.0**-22)
    np.testing.assert_allclose(load(tmp_path / 'u8.wav', backend=backend)['audio'], x,
                               atol=2.0**-6)


@pytest.mark.parametrize('backend', BACKENDS)
def test_load_errors_name_the_file(tmp_path, backend):
    pcm = int16_tone()
    write_wav_stdlib(tmp_path / 'good.wav', pcm)
    data = (tmp_path / 'good.wav').read_bytes()
    (tmp_path / 'empty.wav').write_bytes(b'')
    (tmp_path / 'cut.wav').write_bytes(data[:len(data) // 2])      # inside the samples
    (tmp_path / 'cuthead.wav').write_bytes(data[:30])              # inside the header
    (tmp_path / 'text.wav').write_text('not audio at all\n' * 20)
    write_wav_stdlib(tmp_path / 'nosamples.wav', np.zeros(0, np.int16))
    write_wav_stdlib(tmp_path / 'rate8k.wav', pcm[:8000], sr=8000)
    cases = dict(missing='not found', empty='empty', cut='truncated', cuthead='',
                 text='', nosamples='no samples', rate8k='8000 Hz, expected 16000 Hz')
    for stem, what in cases.items():
        name = f'{stem}.wav'
        with pytest.raises(AudioLoadError, match=re.escape(name) + '.*' + re.escape(what)):
            load(tmp_path / name, sample_rate=SR, backend=backend)
    with pytest.raises(FileNotFoundError):  # a missing file is also the builtin error
        load(tmp_path / 'missing.wav', backend=backend)
    assert issubclass(AudioFileNotFoundError, AudioLoadError)
    assert issubclass(AudioLoadError, ValueError)


@pytest.mark.parametrize('scipy_available', [True, False])
def test_load_resamples_on_request(tmp_path, monkeypatch, scipy_available):
    if not scipy_available:  # force the numpy linear-interpolation fallback
        monkeypatch.setitem(sys.modules, 'scipy.signal', None)
    write_wav_stdlib(tmp_path / 'r8k.wav', np.round(tone(440.0, sr=8000) * 32767), sr=8000)
    results = load(tmp_path / 'r8k.wav', sample_rate=SR, resample=True)
    wav = results['audio']
    assert results['sample_rate'] == SR and wav.shape == (SR,) and wav.dtype == np.float32
    spectrum = np.abs(np.fft.rfft(wav))
    assert np.argmax(spectrum) == 440  # 1 s clip: bin k is k Hz
    np.testing.assert_allclose(wav[2000:14000], tone(440.0)[2000:14000], atol=0.02)


def test_loader_is_registered_and_validates_arguments():
    t = TRANSFORMS.build(dict(type='LoadAudioFromFile', sample_rate=SR))
    assert isinstance(t, LoadAudioFromFile) and 'sample_rate=16000' in repr(t)
    with pytest.raises(ValueError, match='backend'):
        LoadAudioFromFile(backend='ffmpeg')
    with pytest.raises(ValueError, match='sample_rate'):
        LoadAudioFromFile(resample=True)


# ---------------------------------------------------------------------------
# Augmentations


def wave_results(x=None) -> dict:
    return dict(audio=tone(440.0) if x is None else x, sample_rate=SR)


def db(ratio_of_powers: float) -> float:
    return 10 * np.log10(ratio_of_powers)


def power(x) -> float:
    return float(np.mean(np.square(x, dtype=np.float64)))


def test_random_gain_is_exact_in_db():
    x = tone(440.0)
    out = AudioRandomGain(6.0, 6.0, prob=1.0)(wave_results())
    np.testing.assert_allclose(out['audio'], x * 10 ** (6 / 20), rtol=1e-6)
    assert db(power(out['audio']) / power(x)) == pytest.approx(6.0, abs=1e-4)
    np.random.seed(3)
    out = AudioRandomGain(-3.0, 3.0, prob=1.0)(wave_results())
    assert -3.0 <= out['audio_gain_db'] <= 3.0 and out['audio_gain_db'] != 0.0
    assert db(power(out['audio']) / power(x)) == pytest.approx(out['audio_gain_db'], abs=1e-4)
    skipped = AudioRandomGain(prob=0.0)(wave_results())
    np.testing.assert_array_equal(skipped['audio'], x)
    assert skipped['audio_gain_db'] == 0.0


def test_add_noise_hits_the_snr():
    x = tone(440.0)
    for snr in (0.0, 20.0):
        out = AudioAddNoise(snr_db=snr, prob=1.0)(wave_results())
        assert db(power(x) / power(out['audio'] - x)) == pytest.approx(snr, abs=0.01)
    np.random.seed(1)
    out = AudioAddNoise(snr_db=(5.0, 15.0), prob=1.0)(wave_results())
    assert 5.0 <= out['audio_snr_db'] <= 15.0
    assert db(power(x) / power(out['audio'] - x)) == pytest.approx(out['audio_snr_db'],
                                                                  abs=0.01)
    assert out['audio'].dtype == np.float32
    silent = AudioAddNoise(snr_db=10.0, prob=1.0)(wave_results(np.zeros(100, np.float32)))
    assert not silent['audio'].any() and silent['audio_snr_db'] is None


def test_time_shift_moves_the_signal():
    x = np.zeros(1000, np.float32)
    x[500] = 1.0
    np.random.seed(0)
    seen = set()
    for _ in range(20):
        out = AudioRandomTimeShift(max_shift=0.2, mode='roll', prob=1.0)(wave_results(x))
        s = out['audio_shift']
        assert abs(s) <= 200
        np.testing.assert_array_equal(out['audio'], np.roll(x, s))
        assert out['audio'][500 + s] == 1.0
        seen.add(s)
    assert len(seen) > 10
    # pad mode: what leaves the clip is dropped, the gap is zeros
    ramp = np.arange(1, 1001, dtype=np.float32)
    np.random.seed(0)
    for _ in range(10):
        out = AudioRandomTimeShift(max_shift=300, unit='samples', mode='pad',
                                   prob=1.0)(wave_results(ramp))
        s, y = out['audio_shift'], out['audio']
        if s >= 0:
            assert not y[:s].any() and np.array_equal(y[s:], ramp[:1000 - s])
        else:
            assert not y[s:].any() and np.array_equal(y[:s], ramp[-s:])
    # seconds: at most 0.01 s = 160 samples; works on (C, T) too
    stereo = np.stack([tone(300.0), tone(500.0)])
    for _ in range(10):
        out = AudioRandomTimeShift(0.01, unit='seconds', prob=1.0)(wave_results(stereo))
        assert abs(out['audio_shift']) <= 160 and out['audio'].shape == (2, SR)
    with pytest.raises(ValueError, match='mode'):
        AudioRandomTimeShift(mode='wrap')


def test_fix_length_pads_and_crops():
    x = np.arange(1, 11, dtype=np.float32)
    crop = lambda **kw: AudioFixLength(**kw)(wave_results(x.copy()))['audio']
    np.testing.assert_array_equal(crop(num_samples=4), [1, 2, 3, 4])
    np.testing.assert_array_equal(crop(num_samples=4, crop='center'), [4, 5, 6, 7])
    np.testing.assert_array_equal(crop(num_samples=13), list(range(1, 11)) + [0, 0, 0])
    np.testing.assert_array_equal(crop(num_samples=14, pad='center'),
                                  [0, 0] + list(range(1, 11)) + [0, 0])
    np.random.seed(0)
    for _ in range(5):
        y = crop(num_samples=4, crop='random')
        assert len(y) == 4 and np.array_equal(np.diff(y), [1, 1, 1])
        y = crop(num_samples=15, pad='random')
        assert np.array_equal(y[y > 0], x)
    out = AudioFixLength(length_s=0.5)(wave_results(np.ones((2, SR), np.float32)))
    assert out['audio'].shape == (2, SR // 2)
    with pytest.raises(ValueError, match='exactly one'):
        AudioFixLength()
    with pytest.raises(KeyError, match='sample_rate'):
        AudioFixLength(length_s=1.0)(dict(audio=x))


@pytest.mark.parametrize('transform', [
    dict(type='AudioRandomGain', prob=0.7),
    dict(type='AudioAddNoise', prob=0.7),
    dict(type='AudioRandomTimeShift', prob=0.7),
    dict(type='AudioFixLength', num_samples=12000, crop='random'),
])
def test_random_transforms_are_deterministic_under_a_seed(transform):
    t = TRANSFORMS.build(transform)

    def run(seed):
        np.random.seed(seed)
        return [t(wave_results())['audio'] for _ in range(4)]

    first, again = run(0), run(0)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(first, run(1)))


# ---------------------------------------------------------------------------
# AudioLogMel


def kaldi_mel(f):
    return 1127.0 * np.log(1.0 + np.asarray(f) / 700.0)


def inverse_kaldi_mel(m):
    return 700.0 * (np.exp(np.asarray(m) / 1127.0) - 1.0)


def slaney_mel(f):
    f = float(f)
    return 3.0 * f / 200.0 if f < 1000 else 15.0 + 27.0 * np.log(f / 1000.0) / np.log(6.4)


def expected_bin(freq: float, centres: np.ndarray, scale) -> int:
    """The mel filter whose centre is nearest the tone (on the mel scale)."""
    return int(np.argmin(np.abs(centres - scale(freq))))


AST_FE = dict(type='ASTFeatureExtractor', num_mel_bins=64, max_length=100)
WHISPER_FE = dict(type='WhisperFeatureExtractor', chunk_length=1)  # 1 s -> 100 frames


@pytest.mark.parametrize('freq', [440.0, 1000.0, 3000.0])
def test_log_mel_shape_and_pure_tone_peak(freq):
    # AST: Kaldi fbank, mel filters evenly spaced on 1127 ln(1 + f/700) from 20 Hz to 8 kHz.
    out = AudioLogMel(AST_FE)(wave_results(tone(freq)))
    spec = out['audio']
    assert spec.shape == (64, 100) and spec.dtype == np.float32
    centres = np.linspace(kaldi_mel(20.0), kaldi_mel(SR / 2), 64 + 2)[1:-1]
    assert spec[:, :90].mean(1).argmax() == expected_bin(freq, centres, kaldi_mel)
    # Whisper: Slaney mel scale from 0 Hz to 8 kHz, 80 filters.
    spec = AudioLogMel(WHISPER_FE)(wave_results(tone(freq)))['audio']
    assert spec.shape == (80, 100) and spec.dtype == np.float32
    centres = np.linspace(0.0, slaney_mel(SR / 2), 80 + 2)[1:-1]
    assert spec.mean(1).argmax() == expected_bin(freq, centres, slaney_mel)


def test_log_mel_peak_exact_at_filter_centres():
    centres = np.linspace(kaldi_mel(20.0), kaldi_mel(SR / 2), 64 + 2)[1:-1]
    log_mel = TRANSFORMS.build(dict(type='AudioLogMel', feature_extractor=AST_FE))
    for k in (5, 20, 40, 60):
        freq = float(inverse_kaldi_mel(centres[k]))
        spec = log_mel(wave_results(tone(freq)))['audio']
        assert spec[:, :90].mean(1).argmax() == k


def test_log_mel_errors(tmp_path):
    results = dict(audio=tone(440.0, sr=8000), sample_rate=8000, audio_path='clip_8k.wav')
    with pytest.raises(ValueError, match=r'clip_8k\.wav is at 8000 Hz.*expects 16000 Hz'):
        AudioLogMel(AST_FE)(results)
    with pytest.raises(ValueError, match='mono'):
        AudioLogMel(AST_FE)(wave_results(np.zeros((2, SR), np.float32)))
    with pytest.raises(KeyError, match='sample_rate'):
        AudioLogMel(AST_FE)(dict(audio=tone(440.0)))
    with pytest.raises(ValueError, match='not a transformers audio feature extractor'):
        AudioLogMel('BertTokenizer')
    with pytest.raises(ValueError, match='not a transformers audio feature extractor'):
        AudioLogMel('NoSuchFeatureExtractor')


def test_load_then_log_mel_on_a_real_file(tmp_path):
    write_wav_stdlib(tmp_path / 'a.wav', int16_tone(1000.0))
    results = load(tmp_path / 'a.wav', sample_rate=SR)
    spec = AudioLogMel(dict(AST_FE, num_mel_bins=32))(results)['audio']
    assert spec.shape == (32, 100)
