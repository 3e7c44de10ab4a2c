"""Corruptions at levels 0..10: identity at 0, seeded, stronger with the level,
same type/shape/dtype, and inserted at the right place of a real pipeline."""
import numpy as np
import pytest

from mmfusion.analysis import CORRUPTIONS, Corrupt, corrupt_pipeline, data_kind
from mmfusion.errors import ConfigError


def _img():
    rng = np.random.default_rng(0)
    img = np.full((64, 64, 3), 200, np.uint8)
    img[10:30, 10:30] = (30, 200, 40)
    img[40:60, 35:60] = rng.integers(0, 255, (20, 25, 3))
    return img


@pytest.mark.parametrize('name', sorted(CORRUPTIONS['image']))
def test_image_corruptions(name):
    img = _img()
    outs = []
    for level in (0, 3, 10):
        r = Corrupt(name, 'image', 'img', level, seed=1).transform(dict(img=img.copy(),
                                                                        sample_idx=5))
        out = r['img']
        assert out.shape == img.shape and out.dtype == img.dtype
        outs.append(out.astype(float))
    assert np.array_equal(outs[0], img)
    err3, err10 = (np.abs(o - img).mean() for o in outs[1:])
    assert 0 < err3 < err10, (name, err3, err10)
    again = Corrupt(name, 'image', 'img', 10, seed=1).transform(dict(img=img.copy(),
                                                                     sample_idx=5))['img']
    assert np.array_equal(again, outs[2].astype(np.uint8))


def test_depth_and_audio():
    depth = np.full((32, 32), 5000, np.uint16)
    noisy = Corrupt('gaussian_noise', 'image', 'depth', 5).transform(dict(depth=depth))['depth']
    assert noisy.dtype == np.uint16 and noisy.std() > 1000  # 0.15 of the 16-bit range
    rng = np.random.default_rng(0)
    wav = np.sin(np.linspace(0, 2000, 16000)).astype(np.float32)
    for level in (2, 8):
        out = Corrupt('white_noise', 'audio', 'audio', level).transform(
            dict(audio=wav.copy()))['audio']
        noise = out - wav
        snr = 10 * np.log10(np.mean(wav ** 2) / np.mean(noise ** 2))
        assert snr == pytest.approx(40 - 5 * level, abs=0.3)
    out = Corrupt('time_dropout', 'audio', 'audio', 10).transform(dict(audio=wav.copy()))['audio']
    assert 0.6 < np.mean(out == 0) < 1.0 and out.shape == wav.shape
    del rng


def test_text_corruptions():
    q = 'what color is the small triangle on the left?'
    for name in CORRUPTIONS['text']:
        assert Corrupt(name, 'text', 'q', 0).transform(dict(q=q))['q'] == q
        out = Corrupt(name, 'text', 'q', 10).transform(dict(q=q, sample_idx=0))['q']
        assert isinstance(out, str) and out != q
    shuffled = Corrupt('word_shuffle', 'text', 'q', 10).transform(dict(q=q))['q']
    assert sorted(shuffled.split()) == sorted(q.split())
    dropped = Corrupt('word_dropout', 'text', 'q', 10).transform(dict(q=q))['q']
    assert len(dropped.split()) < len(q.split())


def test_bad_arguments_and_kinds():
    with pytest.raises(ConfigError, match='no .blur. corruption for audio'):
        Corrupt('blur', 'audio', 'audio', 3)
    with pytest.raises(ConfigError, match='level must be in'):
        Corrupt('blur', 'image', 'img', 11)
    assert [data_kind(m) for m in ('image', 'depth', 'audio', 'text', 'question', 'tabular')] \
        == ['image', 'image', 'audio', 'text', 'text', 'vector']


def test_inserted_in_a_real_pipeline(mmshapes_root):
    from mmfusion.registry import TRANSFORMS
    from mmfusion.utils import register_all_modules

    register_all_modules()
    cfg = [dict(type='LoadImageFromFile'), dict(type='LoadAudioFromFile', sample_rate=16000),
           dict(type='AudioLogMel', feature_extractor=dict(type='ASTFeatureExtractor',
                                                           num_mel_bins=64, max_length=100)),
           dict(type='PackMultiModalInputs', inputs=dict(image='img', audio='audio'))]
    ts = [TRANSFORMS.build(c) for c in cfg]
    audio = corrupt_pipeline(ts, 'audio', 'white_noise', 5)
    assert type(audio[2]).__name__ == 'Corrupt'  # on the waveform, before the log-mel
    image = corrupt_pipeline(ts, 'image', 'blur', 5)
    assert type(image[3]).__name__ == 'Corrupt' and image[3].key == 'img'
    with pytest.raises(ConfigError, match='not packed'):
        corrupt_pipeline(ts, 'depth', 'blur', 5)


def test_text_corruption_reaches_a_retrieval_sample_s_captions():
    results = dict(text='a red circle and a blue square.', sample_idx=3,
                   captions=['a red circle and a blue square.', 'two green triangles.'])
    out = Corrupt('word_dropout', 'text', 'text', level=10)(
        dict(results, captions=list(results['captions'])))
    assert out['text'] != results['text']
    assert all(a != b for a, b in zip(out['captions'], results['captions']))
    assert len(out['captions']) == 2
    clean = Corrupt('word_dropout', 'text', 'text', level=0)(dict(results))
    assert clean['captions'] == results['captions']
