"""OGM-GE: the coefficients follow the paper's formula, the hook scales the
dominant modality's encoder gradients, and a one-modality model is refused."""
import math

import pytest
import torch

from mmfusion.engine.hooks import OGMGEHook
from mmfusion.engine.hooks.modality_balance import ogm_ge_coefficients
from mmfusion.errors import ConfigError
from mmfusion.registry import MODELS
from mmfusion.structures import MultiModalDataSample
from mmfusion.utils import register_all_modules

register_all_modules()


def test_coefficients_follow_the_paper_on_a_hand_computed_case():
    # s^a = 3.0, s^v = 1.5: rho^a = 2, rho^v = 0.5; k^a = 1 - tanh(0.5 * 2)
    coeffs = ogm_ge_coefficients(dict(audio=3.0, visual=1.5), alpha=0.5)
    assert coeffs['audio'] == pytest.approx(1 - math.tanh(1.0))  # 0.2384
    assert coeffs['audio'] == pytest.approx(0.238406, abs=1e-6)
    assert coeffs['visual'] == 1.0
    # balanced modalities: rho = 1 is not > 1, nothing is modulated
    assert ogm_ge_coefficients(dict(a=2.0, b=2.0), alpha=1.0) == dict(a=1.0, b=1.0)
    # three modalities: the ratio is against the mean of the others
    three = ogm_ge_coefficients(dict(a=4.0, b=1.0, c=3.0), alpha=0.1)
    assert three['a'] == pytest.approx(1 - math.tanh(0.1 * 4.0 / 2.0))
    assert three['c'] == pytest.approx(1 - math.tanh(0.1 * 3.0 / 2.5))
    assert three['b'] == 1.0


def build(n_modalities: int = 2):
    torch.manual_seed(0)
    encoders = dict(a=dict(type='MLPEncoder', in_dim=4, hidden_dims=(8, ), out_dim=8),
                    b=dict(type='MLPEncoder', in_dim=3, hidden_dims=(8, ), out_dim=8))
    if n_modalities == 1:
        encoders.pop('b')
    return MODELS.build(dict(type='MultiModalClassifier', encoders=encoders,
                             fusion=dict(type='ConcatFusion', out_dim=8),
                             head=dict(type='ClsHead', num_classes=3)))


def batch():
    torch.manual_seed(1)
    samples = []
    for i in range(8):
        s = MultiModalDataSample()
        s.gt_label = i % 3
        samples.append(s)
    return dict(inputs=dict(a=list(torch.randn(8, 4)), b=list(torch.randn(8, 3))),
                data_samples=samples)


def encoder_grads(model, hook=None):
    model.zero_grad()
    data = model.data_preprocessor(batch())
    losses = model(**data, mode='loss')
    model.parse_losses(losses)[0].backward()
    return {name: [p.grad.clone() for p in enc.parameters() if p.ndim >= 2]
            for name, enc in model.encoders.items()}, losses


def test_ogm_scales_the_dominant_encoder_gradient_by_its_coefficient():
    model = build()
    plain, _ = encoder_grads(model)
    hook = OGMGEHook(alpha=0.5, generalization_enhancement=False)
    hook.attach(model)
    modulated, losses = encoder_grads(model)
    assert {'contrib_a', 'contrib_b'} <= set(losses)
    scores = {k: float(v) for k, v in model.last_modality_scores.items()}
    expected = ogm_ge_coefficients(scores, 0.5)
    assert hook.coeffs == pytest.approx(expected)
    assert min(expected.values()) < 1.0  # one modality dominates on this batch
    for name in ('a', 'b'):
        for g_plain, g_mod in zip(plain[name], modulated[name]):
            assert torch.allclose(g_mod, g_plain * expected[name], atol=1e-7)
    hook.detach()
    again, _ = encoder_grads(model)
    assert all(torch.allclose(g, h) for g, h in zip(plain['a'], again['a']))


def test_generalisation_enhancement_adds_noise_of_the_gradient_scale():
    model = build()
    plain, _ = encoder_grads(model)
    hook = OGMGEHook(alpha=0.5)
    hook.attach(model)
    torch.manual_seed(3)
    noisy, _ = encoder_grads(model)
    for name in ('a', 'b'):
        for g_plain, g_noisy in zip(plain[name], noisy[name]):
            noise = g_noisy - g_plain * hook.coeffs[name]
            assert noise.abs().sum() > 0
            assert 0.5 < float(noise.std() / g_plain.std()) < 1.6


def test_ogm_ge_on_a_one_modality_model_names_the_config_key():
    with pytest.raises(ConfigError, match=r'custom_hooks\[OGMGEHook\]: .*at least two'):
        OGMGEHook().attach(build(n_modalities=1))


def test_ogm_ge_alpha_must_be_positive():
    with pytest.raises(ConfigError, match='alpha must be > 0'):
        OGMGEHook(alpha=0)
