"""Tests of SumFusion, LinearSumFusion, GMUFusion, FiLMFusion,
MultiplicativeInteractionFusion and LateFusion."""
import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from fusion_checks import (
    assert_every_parameter_gets_a_gradient,
    build_fusion,
    n_params,
    random_vectors,
)

# Imported for their registration, before mmfusion.models.fusion lists them.
from mmfusion.models.fusion.base import BaseVectorFusion
from mmfusion.models.fusion.concat import ConcatFusion
from mmfusion.models.fusion.gated import (
    FiLMFusion,
    GMUFusion,
    MultiplicativeInteractionFusion,
)
from mmfusion.models.fusion.late import LateFusion
from mmfusion.models.fusion.linear import LinearSumFusion, SumFusion

B = 4
OUT = 4
DIMS2 = dict(image=6, text=5)
DIMS3 = dict(image=6, text=5, audio=3)


# ------------------------------------------------ documented parameter counts


def _mlp_count(sizes):
    return sum((a + 1) * b for a, b in itertools.pairwise(sizes))


def _expected_params(cfg: dict) -> int:
    """The "Parameter count:" formula of each module's docstring."""
    dims, out, kind = cfg['in_dims'], cfg['out_dim'], cfg['type']
    m = len(dims)
    if kind == 'SumFusion':
        return sum((d + 1) * out for d in dims.values())
    if kind == 'LinearSumFusion':
        return sum((d + 1) * out for d in dims.values()) + m
    if kind == 'GMUFusion':
        gates = 1 if m == 2 else m
        return sum((d + 1) * out for d in dims.values()) + (sum(dims.values()) + 1) * gates * out
    if kind == 'FiLMFusion':
        h = cfg.get('hidden_dim') or out
        d_t = dims[cfg['target']]
        conditioning = [d for name, d in dims.items() if name != cfg['target']]
        return (d_t + 1) * h + sum((d + 1) * 2 * h for d in conditioning) + (h + 1) * out
    if kind == 'MultiplicativeInteractionFusion':
        context = cfg.get('context') or list(dims)[1]
        d_z = dims[context]
        d_x = next(d for name, d in dims.items() if name != context)
        rows = {'matrix': d_x * out, 'vector': d_x, 'scalar': 1}[cfg.get('mode', 'matrix')]
        return (d_z + 1) * (rows + out)
    if kind == 'LateFusion':
        hidden = list(cfg.get('hidden_dims', ()))
        heads = sum(_mlp_count([d, *hidden, out]) for d in dims.values())
        return heads + (m if cfg.get('combine') == 'weighted' else 0)
    raise AssertionError(kind)


CFGS = [
    dict(type='SumFusion', in_dims=DIMS2, out_dim=OUT),
    dict(type='SumFusion', in_dims=DIMS3, out_dim=OUT, act_out=False),
    dict(type='LinearSumFusion', in_dims=DIMS2, out_dim=OUT),
    dict(type='LinearSumFusion', in_dims=DIMS3, out_dim=OUT, act_out=False),
    dict(type='GMUFusion', in_dims=DIMS2, out_dim=OUT),
    dict(type='GMUFusion', in_dims=DIMS3, out_dim=OUT),
    dict(type='FiLMFusion', in_dims=DIMS2, out_dim=OUT, target='image'),
    dict(type='FiLMFusion', in_dims=DIMS3, out_dim=OUT, target='text', hidden_dim=7),
    dict(type='MultiplicativeInteractionFusion', in_dims=DIMS2, out_dim=OUT),
    dict(type='MultiplicativeInteractionFusion', in_dims=DIMS2, out_dim=5, context='image',
         mode='vector'),
    dict(type='MultiplicativeInteractionFusion', in_dims=DIMS2, out_dim=6, mode='scalar'),
    dict(type='LateFusion', in_dims=DIMS2, out_dim=OUT),
    dict(type='LateFusion', in_dims=DIMS3, out_dim=OUT, hidden_dims=(7,), combine='weighted'),
    dict(type='LateFusion', in_dims=DIMS3, out_dim=OUT, hidden_dims=(7, 3), combine='vote'),
]
IDS = [f"{c['type']}-{len(c['in_dims'])}-{c.get('mode', c.get('combine', ''))}" for c in CFGS]


def _build(cfg):
    torch.manual_seed(0)
    return build_fusion(cfg)


# ------------------------------------------------------------ shared contract


@pytest.mark.parametrize('cfg', CFGS, ids=IDS)
def test_builds_shape_gradients_and_parameter_count(cfg):
    fusion = _build(cfg)
    assert isinstance(fusion, BaseVectorFusion) and fusion.input_form == 'vector'
    assert n_params(fusion) == _expected_params(cfg)
    out = fusion(random_vectors(cfg['in_dims'], batch=B))
    assert out.shape == (B, cfg['out_dim'])
    assert torch.isfinite(out).all()
    assert_every_parameter_gets_a_gradient(fusion, out)


@pytest.mark.parametrize('cfg', CFGS, ids=IDS)
def test_a_missing_modality_never_leaks(cfg):
    fusion = _build(cfg)
    feats = random_vectors(cfg['in_dims'], batch=B)
    for name in cfg['in_dims']:
        mask = {name: torch.tensor([True, False, True, True])}
        out = fusion(feats, mask)

        poisoned = {k: v.clone() for k, v in feats.items()}
        poisoned[name][1] = torch.nan
        out_nan = fusion(poisoned, mask)
        assert torch.isfinite(out_nan).all()
        torch.testing.assert_close(out_nan, out)
        fusion.zero_grad()
        assert_every_parameter_gets_a_gradient(fusion, out_nan)

        other = {k: v.clone() for k, v in feats.items()}
        other[name][1] = torch.randn(cfg['in_dims'][name]) * 5
        torch.testing.assert_close(fusion(other, mask), out)

        # The same modality, present in sample 0, does matter there and only there.
        changed = {k: v.clone() for k, v in feats.items()}
        changed[name][0] += 1.0
        out_changed = fusion(changed, mask)
        assert not torch.allclose(out_changed[0], out[0])
        torch.testing.assert_close(out_changed[1:], out[1:])
        # A modality absent from the mask dict is present: masking changes sample 1.
        assert not torch.allclose(fusion(feats)[1], out[1])


@pytest.mark.parametrize('cfg', CFGS, ids=IDS)
def test_every_modality_missing_gives_a_finite_output(cfg):
    fusion = _build(cfg)
    feats = random_vectors(cfg['in_dims'], batch=B)
    feats = {k: torch.where(torch.arange(B).unsqueeze(1) == 2, torch.nan, v)
             for k, v in feats.items()}
    mask = {k: torch.arange(B) != 2 for k in cfg['in_dims']}
    out = fusion(feats, mask)
    assert torch.isfinite(out).all()
    # With no input left, the output is a constant: the same for any features.
    feats2 = {k: torch.where(torch.arange(B).unsqueeze(1) == 2, 1e3, v)
              for k, v in feats.items()}
    torch.testing.assert_close(fusion(feats2, mask), out)


@pytest.mark.parametrize('cfg', CFGS, ids=IDS)
def test_wrong_mask_shape_and_missing_modality_are_clear_errors(cfg):
    fusion = _build(cfg)
    feats = random_vectors(cfg['in_dims'], batch=B)
    name = next(iter(cfg['in_dims']))
    with pytest.raises(ValueError, match=rf"mask\['{name}'\] must have shape \(4,\)"):
        fusion(feats, {name: torch.ones(3, dtype=torch.bool)})
    with pytest.raises(KeyError, match=f'expects modality {name!r}'):
        fusion({k: v for k, v in feats.items() if k != name})


# ------------------------------------------------------------------ SumFusion


def test_sum_equals_concat_linear_and_drops_a_missing_modality_with_its_bias():
    torch.manual_seed(0)
    fusion = SumFusion(DIMS2, OUT, act_out=False)
    concat = ConcatFusion(DIMS2, OUT, act_out=False)
    with torch.no_grad():
        concat.mlp[0].weight.copy_(torch.cat([fusion.proj['image'].weight,
                                              fusion.proj['text'].weight], dim=1))
        concat.mlp[0].bias.copy_(fusion.proj['image'].bias + fusion.proj['text'].bias)
    feats = random_vectors(DIMS2)
    out = fusion(feats)
    torch.testing.assert_close(out, concat(feats))
    assert (out < 0).any()
    assert (SumFusion(DIMS2, OUT)(feats) >= 0).all()  # act_out=True: ReLU

    masked = fusion(feats, dict(text=torch.tensor([True, False, True, False])))
    image_only = fusion.proj['image'](feats['image'])
    torch.testing.assert_close(masked[[1, 3]], image_only[[1, 3]])
    none = fusion(feats, dict(image=torch.zeros(B, dtype=torch.bool),
                              text=torch.zeros(B, dtype=torch.bool)))
    torch.testing.assert_close(none, torch.zeros(B, OUT))


def test_sum_accepts_a_single_modality():
    fusion = SumFusion(dict(image=6), OUT, act_out=False)
    x = random_vectors(dict(image=6))
    torch.testing.assert_close(fusion(x), fusion.proj['image'](x['image']))


# ------------------------------------------------------------ LinearSumFusion


def test_linear_sum_weights_and_renormalisation():
    torch.manual_seed(0)
    fusion = LinearSumFusion(DIMS3, OUT, act_out=False)
    feats = random_vectors(DIMS3)
    projections = {k: fusion.proj[k](feats[k]) for k in DIMS3}
    # Zero logits: the mean of the projections, i.e. SumFusion / M.
    torch.testing.assert_close(fusion(feats), sum(projections.values()) / 3)
    assert fusion.modality_weights == pytest.approx(dict(image=1 / 3, text=1 / 3, audio=1 / 3))

    with torch.no_grad():
        fusion.weight_logits.copy_(torch.tensor([0.5, -1.0, 2.0]))
    w = torch.tensor([0.5, -1.0, 2.0]).softmax(0)
    assert list(fusion.modality_weights.values()) == pytest.approx(w.tolist())
    expected = sum(wi * projections[k] for wi, k in zip(w, DIMS3))
    torch.testing.assert_close(fusion(feats), expected)

    # Missing audio in sample 0: weights renormalised over image and text.
    mask = dict(audio=torch.tensor([False, True, True, True]))
    w2 = torch.tensor([0.5, -1.0]).softmax(0)
    expected0 = w2[0] * projections['image'][0] + w2[1] * projections['text'][0]
    torch.testing.assert_close(fusion(feats, mask)[0], expected0)
    # A single present modality gets weight 1.
    only_text = dict(image=torch.zeros(B, dtype=torch.bool),
                     audio=torch.zeros(B, dtype=torch.bool))
    torch.testing.assert_close(fusion(feats, only_text), projections['text'])


def test_linear_sum_needs_two_modalities():
    with pytest.raises(ValueError, match='LinearSumFusion fuses at least 2 modalities'):
        build_fusion(dict(type='LinearSumFusion', in_dims=dict(image=3), out_dim=2))


# ------------------------------------------------------------------ GMUFusion


def test_gmu_two_modalities_is_the_papers_sigmoid_gate():
    fusion = _build(dict(type='GMUFusion', in_dims=DIMS2, out_dim=OUT))
    feats = random_vectors(DIMS2)
    h_img = torch.tanh(fusion.proj['image'](feats['image']))
    h_txt = torch.tanh(fusion.proj['text'](feats['text']))
    z = torch.sigmoid(fusion.gate(torch.cat([feats['image'], feats['text']], dim=-1)))
    torch.testing.assert_close(fusion(feats), z * h_img + (1 - z) * h_txt)
    torch.testing.assert_close(fusion.last_gates[:, 0], z)

    # Missing text: the image candidate alone (gate 1).
    mask = dict(text=torch.tensor([False, True, False, True]))
    out = fusion(feats, mask)
    torch.testing.assert_close(out[[0, 2]], h_img[[0, 2]])
    torch.testing.assert_close(fusion.last_gates[[0, 2]],
                               torch.tensor([1.0, 0.0]).view(1, 2, 1).expand(2, 2, OUT))


def test_gmu_three_modalities_softmax_gates_renormalised_over_present():
    fusion = _build(dict(type='GMUFusion', in_dims=DIMS3, out_dim=OUT))
    feats = random_vectors(DIMS3)
    h = torch.stack([torch.tanh(fusion.proj[k](feats[k])) for k in DIMS3], dim=1)
    logits = fusion.gate(torch.cat(list(feats.values()), dim=-1)).view(B, 3, OUT)
    out = fusion(feats)
    torch.testing.assert_close(out, (logits.softmax(1) * h).sum(1))
    assert out.abs().max() <= 1
    torch.testing.assert_close(fusion.last_gates.sum(1), torch.ones(B, OUT))

    mask = dict(text=torch.tensor([False, True, True, True]))
    out = fusion(feats, mask)
    zeroed = dict(feats, text=torch.where(mask['text'].unsqueeze(1), feats['text'], 0.0))
    logits0 = fusion.gate(torch.cat(list(zeroed.values()), dim=-1)).view(B, 3, OUT)[0]
    gates0 = logits0[[0, 2]].softmax(0)
    torch.testing.assert_close(out[0], gates0[0] * h[0, 0] + gates0[1] * h[0, 2])
    assert (fusion.last_gates[0, 1] == 0).all()
    torch.testing.assert_close(fusion.last_gates.sum(1), torch.ones(B, OUT))


def test_gmu_needs_two_modalities():
    with pytest.raises(ValueError, match='GMUFusion fuses at least 2 modalities'):
        GMUFusion(dict(image=3), out_dim=2)


# ----------------------------------------------------------------- FiLMFusion


def _film_by_hand(fusion, feats, conditioners, target_input=None):
    x_t = feats[fusion.target] if target_input is None else target_input
    h = fusion.target_proj(x_t)
    gamma, beta = torch.ones_like(h), torch.zeros_like(h)
    for name in conditioners:
        d_gamma, d_beta = fusion.film[name](feats[name]).chunk(2, dim=-1)
        gamma, beta = gamma + d_gamma, beta + d_beta
    return fusion.out(F.relu(gamma * h + beta))


def test_film_sums_conditioning_and_missing_conditioner_is_identity():
    fusion = _build(dict(type='FiLMFusion', in_dims=DIMS3, out_dim=OUT, target='text',
                         hidden_dim=7))
    assert fusion.conditioners == ['image', 'audio']
    feats = random_vectors(DIMS3)
    torch.testing.assert_close(fusion(feats), _film_by_hand(fusion, feats, ['image', 'audio']))

    mask = dict(audio=torch.tensor([True, False, True, False]))
    torch.testing.assert_close(fusion(feats, mask)[[1, 3]],
                               _film_by_hand(fusion, feats, ['image'])[[1, 3]])
    none = dict(image=torch.zeros(B, dtype=torch.bool), audio=torch.zeros(B, dtype=torch.bool))
    unmodulated = fusion.out(F.relu(fusion.target_proj(feats['text'])))
    torch.testing.assert_close(fusion(feats, none), unmodulated)

    # A conditioner whose Linear outputs zeros is the same identity modulation.
    with torch.no_grad():
        for layer in fusion.film.values():
            layer.weight.zero_()
            layer.bias.zero_()
    torch.testing.assert_close(fusion(feats), unmodulated)


def test_film_missing_target_is_driven_by_the_conditioners():
    fusion = _build(dict(type='FiLMFusion', in_dims=DIMS2, out_dim=OUT, target='image'))
    feats = random_vectors(DIMS2)
    mask = dict(image=torch.zeros(B, dtype=torch.bool))
    expected = _film_by_hand(fusion, feats, ['text'], torch.zeros(B, 6))
    torch.testing.assert_close(fusion(feats, mask), expected)


def test_film_bad_arguments():
    with pytest.raises(ValueError, match=r"FiLMFusion: target='depth' is not one of"):
        FiLMFusion(DIMS2, OUT, target='depth')
    with pytest.raises(ValueError, match='FiLMFusion needs a target and at least one'):
        FiLMFusion(dict(image=3), OUT, target='image')
    with pytest.raises(ValueError, match='FiLMFusion: hidden_dim must be >= 1'):
        FiLMFusion(DIMS2, OUT, target='image', hidden_dim=0)


# ---------------------------------------------------- MultiplicativeInteraction


def test_mi_matrix_is_the_full_bilinear_form():
    fusion = _build(dict(type='MultiplicativeInteractionFusion', in_dims=DIMS2, out_dim=OUT))
    assert (fusion.input, fusion.context) == ('image', 'text')
    feats = random_vectors(DIMS2)
    x, z = feats['image'], feats['text']
    # f = z^T W x + z^T U + V x + b with W a (out, D_x, D_z) tensor.
    W = fusion.weight_gen.weight.view(OUT, 6, 5)
    V = fusion.weight_gen.bias.view(OUT, 6)
    U, b = fusion.bias_gen.weight, fusion.bias_gen.bias
    expected = torch.einsum('oij,bi,bj->bo', W, x, z) + z @ U.T + x @ V.T + b
    torch.testing.assert_close(fusion(feats), expected)

    # Missing context: V x + b, a linear layer of x; missing input: z^T U + b.
    no_z = fusion(feats, dict(text=torch.zeros(B, dtype=torch.bool)))
    torch.testing.assert_close(no_z, x @ V.T + b)
    no_x = fusion(feats, dict(image=torch.zeros(B, dtype=torch.bool)))
    torch.testing.assert_close(no_x, z @ U.T + b)


def test_mi_vector_and_scalar_modes():
    feats = random_vectors(DIMS2)
    vec = _build(dict(type='MultiplicativeInteractionFusion', in_dims=DIMS2, out_dim=5,
                      context='image', mode='vector'))
    assert (vec.input, vec.context) == ('text', 'image')
    x, z = feats['text'], feats['image']
    torch.testing.assert_close(vec(feats), vec.weight_gen(z) * x + vec.bias_gen(z))

    sca = _build(dict(type='MultiplicativeInteractionFusion', in_dims=DIMS2, out_dim=6,
                      mode='scalar'))
    x, z = feats['image'], feats['text']
    s = z @ sca.weight_gen.weight[0] + sca.weight_gen.bias[0]  # (B,)
    torch.testing.assert_close(sca(feats), s.unsqueeze(1) * x + sca.bias_gen(z))


def test_mi_bad_arguments_and_parameter_guard():
    with pytest.raises(ValueError, match='fuses exactly 2 modalities'):
        MultiplicativeInteractionFusion(DIMS3, OUT)
    with pytest.raises(ValueError, match=r"context='audio' is not one of"):
        MultiplicativeInteractionFusion(DIMS2, OUT, context='audio')
    with pytest.raises(ValueError, match=r"mode must be one of .*got 'tensor'"):
        MultiplicativeInteractionFusion(DIMS2, OUT, mode='tensor')
    with pytest.raises(ValueError, match=r"out_dim must equal in_dims\['image'\]=6"):
        MultiplicativeInteractionFusion(DIMS2, OUT, mode='vector')
    # (5 + 1) * (6 * 4 + 4) = 168 parameters
    with pytest.raises(ValueError, match='needs 168 parameters, more than max_params=167'):
        MultiplicativeInteractionFusion(DIMS2, OUT, max_params=167)
    assert n_params(MultiplicativeInteractionFusion(DIMS2, OUT, max_params=168)) == 168
    # The default guard refuses a full matrix of realistic sizes before allocating it.
    with pytest.raises(ValueError, match='max_params=50,000,000'):
        MultiplicativeInteractionFusion(dict(image=2048, text=768), 1024)


# ----------------------------------------------------------------- LateFusion


def test_late_per_modality_decisions_and_mean():
    fusion = _build(dict(type='LateFusion', in_dims=DIMS3, out_dim=OUT, hidden_dims=(7,)))
    feats = random_vectors(DIMS3)
    decisions = fusion.forward_per_modality(feats)
    assert set(decisions) == set(DIMS3)
    for name, logits in decisions.items():
        assert logits.shape == (B, OUT)
        torch.testing.assert_close(logits, fusion.heads[name](feats[name]))
    torch.testing.assert_close(fusion(feats), sum(decisions.values()) / 3)

    mask = dict(audio=torch.tensor([False, True, True, True]),
                text=torch.tensor([True, False, True, True]))
    out = fusion(feats, mask)
    torch.testing.assert_close(out[0], (decisions['image'][0] + decisions['text'][0]) / 2)
    torch.testing.assert_close(out[1], (decisions['image'][1] + decisions['audio'][1]) / 2)
    masked_decisions = fusion.forward_per_modality(feats, mask)
    assert (masked_decisions['audio'][0] == 0).all()
    torch.testing.assert_close(masked_decisions['audio'][1:], decisions['audio'][1:])


def test_late_weighted_starts_at_the_mean_and_renormalises():
    cfg = dict(type='LateFusion', in_dims=DIMS3, out_dim=OUT, combine='weighted')
    fusion = _build(cfg)
    feats = random_vectors(DIMS3)
    decisions = fusion.forward_per_modality(feats)
    torch.testing.assert_close(fusion(feats), sum(decisions.values()) / 3)

    with torch.no_grad():
        fusion.weight_logits.copy_(torch.tensor([1.0, 0.0, -2.0]))
    w = torch.tensor([1.0, 0.0, -2.0]).softmax(0)
    expected = sum(wi * decisions[k] for wi, k in zip(w, DIMS3))
    torch.testing.assert_close(fusion(feats), expected)
    mask = dict(image=torch.tensor([False, True, True, True]))
    w2 = torch.tensor([0.0, -2.0]).softmax(0)
    torch.testing.assert_close(fusion(feats, mask)[0],
                               w2[0] * decisions['text'][0] + w2[1] * decisions['audio'][0])


def test_late_vote_is_log_of_mean_probabilities():
    fusion = _build(dict(type='LateFusion', in_dims=DIMS3, out_dim=OUT, combine='vote'))
    feats = random_vectors(DIMS3)
    decisions = fusion.forward_per_modality(feats)
    mean_probs = sum(d.softmax(-1) for d in decisions.values()) / 3
    out = fusion(feats)
    torch.testing.assert_close(out, mean_probs.log())
    torch.testing.assert_close(out.exp().sum(-1), torch.ones(B))
    # Cross-entropy on the output is the NLL of the mixture of the modalities' predictions.
    target = torch.tensor([0, 1, 2, 3])
    torch.testing.assert_close(F.cross_entropy(out, target),
                               -mean_probs[torch.arange(B), target].log().mean())

    mask = dict(image=torch.tensor([False, True, True, True]),
                text=torch.tensor([False, True, True, True]))
    torch.testing.assert_close(fusion(feats, mask)[0], decisions['audio'][0].log_softmax(-1))
    none = {k: torch.zeros(B, dtype=torch.bool) for k in DIMS3}
    torch.testing.assert_close(fusion(feats, none), torch.full((B, OUT), -math.log(OUT)))

    # Stable for logits whose softmax underflows in float32.
    with torch.no_grad():
        for head in fusion.heads.values():
            head[-1].weight.mul_(1e4)
    out = fusion(feats)
    assert torch.isfinite(out).all()
    assert (out <= 1e-6).all()


def test_late_all_missing_mean_is_zero_and_single_modality_allowed():
    fusion = _build(dict(type='LateFusion', in_dims=DIMS2, out_dim=OUT))
    feats = random_vectors(DIMS2)
    none = {k: torch.zeros(B, dtype=torch.bool) for k in DIMS2}
    torch.testing.assert_close(fusion(feats, none), torch.zeros(B, OUT))
    single = LateFusion(dict(image=6), OUT)
    torch.testing.assert_close(single(feats), single.heads['image'](feats['image']))


def test_late_bad_arguments():
    with pytest.raises(ValueError, match=r"LateFusion: combine must be one of .*got 'max'"):
        LateFusion(DIMS2, OUT, combine='max')
    with pytest.raises(ValueError, match="combine='weighted' needs at least 2 modalities"):
        LateFusion(dict(image=3), OUT, combine='weighted')
    with pytest.raises(ValueError, match=r'LateFusion: dropout must be in \[0, 1\)'):
        LateFusion(DIMS2, OUT, dropout=1.0)
