"""Audio (CNN, AST) and vector (MLP) encoders, and the audio pipeline end to end."""
import wave

import numpy as np
import pytest
import torch
from mmengine.dataset import Compose, default_collate, pseudo_collate

from mmfusion.datasets.transforms.audio import AudioLogMel
from mmfusion.datasets.transforms.formatting import PackMultiModalInputs  # noqa: F401
from mmfusion.models.data_preprocessors.data_preprocessor import MultiModalDataPreprocessor
from mmfusion.models.encoders.audio import ASTEncoder, AudioCNNEncoder
from mmfusion.models.encoders.vector import MLPEncoder
from mmfusion.registry import MODELS, TRANSFORMS

SR = 16000
# 1 s of 16 kHz audio is 100 frames of 10 ms; 16x16 patches every 16 -> 2 x 6 patches.
AST = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
           num_mel_bins=32, max_length=100, frequency_stride=16, time_stride=16)
AST_FE = dict(type='ASTFeatureExtractor', num_mel_bins=32, max_length=100)


def assert_all_params_get_gradients(encoder, x):
    encoder.train()
    out = encoder(x)
    loss = out.pooled.pow(2).sum()
    if out.tokens is not None:
        loss = loss + out.tokens.pow(2).sum()
    loss.backward()
    no_grad = [n for n, p in encoder.named_parameters()
               if p.grad is None or not p.grad.abs().sum() > 0]
    assert not no_grad, f'parameters without gradient: {no_grad}'


def assert_frozen(encoder):
    encoder.train()
    assert not any(p.requires_grad for p in encoder.parameters())
    assert not encoder.model.training  # norm statistics stay fixed


# ---------------------------------------------------------------------------
# AudioCNNEncoder


def test_audio_cnn_shapes_and_layouts():
    torch.manual_seed(0)
    enc = MODELS.build(dict(type='AudioCNNEncoder', num_mel_bins=64, out_dim=48,
                            channels=(8, 16, 32)))
    assert enc.out_dim == 48
    x = torch.randn(2, 64, 100)
    out = enc(x)
    assert out.tokens.shape == (2, 12, 48) and out.pooled.shape == (2, 48)  # 100 // 8 frames
    assert out.mask is None
    torch.testing.assert_close(out.pooled, out.tokens.mean(1))
    enc.eval()
    torch.testing.assert_close(enc(x).tokens, enc(x[:, None]).tokens)  # (B, 1, n_mels, T)


def test_audio_cnn_gradients_frozen_and_errors():
    enc = AudioCNNEncoder(num_mel_bins=32, out_dim=16, channels=(4, 8))
    assert_all_params_get_gradients(enc, torch.randn(3, 32, 40))
    assert_frozen(AudioCNNEncoder(num_mel_bins=32, out_dim=16, channels=(4, 8), frozen=True))
    with pytest.raises(ValueError, match=r'\(B, 32, T\)'):
        enc(torch.randn(2, 40, 32))  # time before mel bins
    with pytest.raises(ValueError, match='at least 4 time frames'):
        enc(torch.randn(2, 32, 3))
    with pytest.raises(ValueError, match='num_mel_bins must be >= 8'):
        AudioCNNEncoder(num_mel_bins=4, channels=(4, 8, 16))


# ---------------------------------------------------------------------------
# ASTEncoder


@pytest.mark.parametrize('pooling', ['cls', 'mean'])
def test_ast_encoder_shapes_and_pooling(pooling):
    torch.manual_seed(0)
    enc = ASTEncoder(config=AST, pooling=pooling).eval()
    assert enc.out_dim == 32
    out = enc(torch.randn(2, 32, 100))
    assert out.tokens.shape == (2, 2 + 2 * 6, 32) and out.pooled.shape == (2, 32)
    expected = ((out.tokens[:, 0] + out.tokens[:, 1]) / 2 if pooling == 'cls'
                else out.tokens[:, 2:].mean(1))
    torch.testing.assert_close(out.pooled, expected)


def test_ast_encoder_takes_audio_log_mel_output():
    t = np.arange(SR) / SR
    wav = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    spec = AudioLogMel(AST_FE)(dict(audio=wav, sample_rate=SR))['audio']
    enc = ASTEncoder(config=AST)
    out = enc(torch.from_numpy(spec)[None])
    assert out.pooled.shape == (1, 32)
    assert enc(torch.from_numpy(spec)[None, None]).tokens.shape == (1, 14, 32)


def test_ast_encoder_gradients_frozen_weights_and_errors(tmp_path):
    enc = ASTEncoder(config=AST)
    assert_all_params_get_gradients(enc, torch.randn(2, 32, 100))
    assert_frozen(ASTEncoder(config=AST, frozen=True))
    with pytest.raises(ValueError, match='expected 100 time frames'):
        enc(torch.randn(2, 32, 80))
    with pytest.raises(ValueError, match=r'\(B, 32, T\)'):
        enc(torch.randn(2, 100, 32))  # the (B, T, n_mels) layout is rejected, not guessed
    with pytest.raises(FileNotFoundError, match='local folder'):
        ASTEncoder(pretrained=str(tmp_path / 'nowhere'))
    with pytest.raises(ValueError, match='exactly one'):
        ASTEncoder()
    with pytest.raises(ValueError, match='pooling'):
        ASTEncoder(config=AST, pooling='max')
    # weights from a local folder
    enc.model.save_pretrained(tmp_path / 'ast')
    loaded = ASTEncoder(pretrained=str(tmp_path / 'ast'))
    loaded.init_weights()  # must not overwrite the loaded weights
    torch.testing.assert_close(loaded.model.embeddings.position_embeddings,
                               enc.model.embeddings.position_embeddings)


# ---------------------------------------------------------------------------
# MLPEncoder


@pytest.mark.parametrize('norm', [None, 'layernorm', 'batchnorm'])
def test_mlp_encoder(norm):
    enc = MODELS.build(dict(type='MLPEncoder', in_dim=12, hidden_dims=(24, 16), out_dim=8,
                            dropout=0.1, norm=norm))
    assert enc.out_dim == 8
    out = enc(torch.randn(4, 12))
    assert out.pooled.shape == (4, 8) and out.tokens is None
    assert_all_params_get_gradients(enc, torch.randn(4, 12))
    assert_frozen(MLPEncoder(in_dim=12, out_dim=8, hidden_dims=(16,), norm=norm, frozen=True))


def test_mlp_encoder_errors():
    enc = MLPEncoder(in_dim=12, out_dim=8)
    assert len(enc.model) == 1  # no hidden layers: one linear projection
    with pytest.raises(ValueError, match=r'expected vectors of shape \(B, in_dim=12\), '
                                         r'got \(4, 10\)'):
        enc(torch.randn(4, 10))
    with pytest.raises(ValueError, match=r'got \(4, 3, 12\)'):
        enc(torch.randn(4, 3, 12))
    with pytest.raises(ValueError, match='norm'):
        MLPEncoder(in_dim=12, out_dim=8, norm='groupnorm')


# ---------------------------------------------------------------------------
# End to end: files -> pipeline -> collate -> data preprocessor -> encoder


@pytest.mark.parametrize('collate', [pseudo_collate, default_collate])
def test_audio_pipeline_to_cnn_encoder(tmp_path, collate):
    samples = []
    for i, freq in enumerate((300.0, 1200.0)):
        path = tmp_path / f'{i:06d}.wav'
        pcm = np.round(0.5 * np.sin(2 * np.pi * freq * np.arange(SR) / SR) * 32767)
        with wave.open(str(path), 'wb') as f:  # 16 kHz mono int16, as MMShapes writes
            f.setnchannels(1)
            f.setsampwidth(2)
            f.setframerate(SR)
            f.writeframes(pcm.astype('<i2').tobytes())
        samples.append(dict(audio_path=str(path), gt_label=i))
    # mmfusion's TRANSFORMS builds each step (mmengine's Compose would look in its own scope).
    pipeline = Compose([TRANSFORMS.build(cfg) for cfg in [
        dict(type='LoadAudioFromFile', sample_rate=SR),
        dict(type='AudioRandomGain', prob=1.0),
        dict(type='AudioFixLength', length_s=1.0),
        dict(type='AudioLogMel', feature_extractor=dict(AST_FE, num_mel_bins=64)),
        dict(type='PackMultiModalInputs', inputs=dict(audio='audio')),
    ]])
    batch = collate([pipeline(dict(s)) for s in samples])
    data = MultiModalDataPreprocessor()(batch)
    audio = data['inputs']['audio']
    assert audio.shape == (2, 1, 64, 100) and audio.dtype == torch.float32
    assert [s.gt_label.item() for s in data['data_samples']] == [0, 1]
    enc = AudioCNNEncoder(num_mel_bins=64, out_dim=32, channels=(8, 16, 32))
    out = enc(audio)
    assert out.pooled.shape == (2, 32) and out.tokens.shape == (2, 12, 32)
    assert torch.isfinite(out.pooled).all()
