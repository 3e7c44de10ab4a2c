"""Tests of ConcatFusion, MFBFusion and TopDownAttentionFusion."""
import itertools

import pytest
import torch

from mmfusion.models.fusion import (
    BaseTokenFusion,
    BaseVectorFusion,
    ConcatFusion,
    MFBFusion,
    TopDownAttentionFusion,
)
from mmfusion.registry import MODELS

B = 4
DIMS2 = {'image': 12, 'text': 7}
DIMS3 = {'image': 12, 'text': 7, 'audio': 5}


def _vectors(dims, batch=B, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {m: torch.randn(batch, d, generator=g) for m, d in dims.items()}


def _tokens(batch=B, n_q=5, n_v=6, d_q=7, d_v=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {'text': torch.randn(batch, n_q, d_q, generator=g),
            'image': torch.randn(batch, n_v, d_v, generator=g)}


def _n_params(module):
    return sum(p.numel() for p in module.parameters())


def _assert_all_params_get_grad(module, out):
    torch.manual_seed(1)
    (out * torch.randn_like(out)).sum().backward()
    for name, p in module.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


# --------------------------------------------------------------------- builds


@pytest.mark.parametrize('cfg, cls', [
    (dict(type='ConcatFusion', in_dims=DIMS2, out_dim=8), ConcatFusion),
    (dict(type='MFBFusion', in_dims=DIMS2, out_dim=8), MFBFusion),
    (dict(type='TopDownAttentionFusion', in_dims=dict(text=7, image=12), out_dim=8,
          hidden_dim=16), TopDownAttentionFusion),
])
def test_build_from_registry(cfg, cls):
    module = MODELS.build(cfg)
    assert type(module) is cls
    assert module.out_dim == 8
    base = BaseTokenFusion if cls is TopDownAttentionFusion else BaseVectorFusion
    assert isinstance(module, base)
    assert module.input_form == base.input_form


# ---------------------------------------------------------------- ConcatFusion


@pytest.mark.parametrize('dims', [{'image': 12}, DIMS2, DIMS3])
@pytest.mark.parametrize('hidden_dims', [(), (10, 9)])
def test_concat_shape_params_grad(dims, hidden_dims):
    torch.manual_seed(0)
    fusion = ConcatFusion(dims, out_dim=8, hidden_dims=hidden_dims, dropout=0.1)
    sizes = [sum(dims.values()), *hidden_dims, 8]
    assert _n_params(fusion) == sum((a + 1) * b for a, b in itertools.pairwise(sizes))
    out = fusion(_vectors(dims))
    assert out.shape == (B, 8)
    # act_out=True: the output went through a ReLU.
    assert (out >= 0).all()
    _assert_all_params_get_grad(fusion, out)


def test_concat_act_out_false_allows_negative_outputs():
    torch.manual_seed(0)
    fusion = ConcatFusion(DIMS2, out_dim=8, act_out=False).eval()
    feats = _vectors(DIMS2)
    out = fusion(feats)
    assert (out < 0).any()
    # Without hidden layers it is exactly one Linear on the concatenation in in_dims order.
    layer = fusion.mlp[0]
    expected = layer(torch.cat([feats['image'], feats['text']], dim=-1))
    torch.testing.assert_close(out, expected)


def test_concat_missing_modality_is_zeros():
    torch.manual_seed(0)
    fusion = ConcatFusion(DIMS2, out_dim=8, hidden_dims=(10, ), act_out=False).eval()
    feats = _vectors(DIMS2)
    mask = {'text': torch.tensor([True, False, True, True])}
    out = fusion(feats, mask)

    # Changing (even to NaN) the text of the missing sample changes nothing.
    changed = dict(feats, text=feats['text'].clone())
    changed['text'][1] = float('nan')
    torch.testing.assert_close(fusion(changed, mask), out)
    # ... and equals feeding zeros for it.
    zeroed = dict(feats, text=feats['text'].clone())
    zeroed['text'][1] = 0.0
    torch.testing.assert_close(fusion(zeroed), out)

    # Changing the text of a present sample does change its output.
    changed = dict(feats, text=feats['text'].clone())
    changed['text'][0] += 1.0
    out2 = fusion(changed, mask)
    assert not torch.allclose(out2[0], out[0])
    torch.testing.assert_close(out2[1:], out[1:])


def test_concat_wrong_input_size():
    fusion = ConcatFusion(DIMS2, out_dim=8)
    feats = _vectors(DIMS2)
    feats['text'] = torch.randn(B, 6)
    with pytest.raises(ValueError, match=r"in_dims\['text'\]=7"):
        fusion(feats)
    with pytest.raises(KeyError, match='image'):
        fusion({'text': torch.randn(B, 7)})


# ------------------------------------------------------------------ MFBFusion


@pytest.mark.parametrize('dims', [DIMS2, DIMS3])
def test_mfb_shape_norm_params_grad(dims):
    torch.manual_seed(0)
    k, out_dim = 3, 8
    fusion = MFBFusion(dims, out_dim=out_dim, factor_k=k, dropout=0.1)
    assert _n_params(fusion) == sum((d + 1) * k * out_dim for d in dims.values())
    out = fusion(_vectors(dims))
    assert out.shape == (B, out_dim)
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(B))
    _assert_all_params_get_grad(fusion, out)


def test_mfb_matches_reference_computation():
    torch.manual_seed(0)
    k, out_dim, eps = 2, 4, 1e-8
    fusion = MFBFusion(DIMS2, out_dim=out_dim, factor_k=k, eps=eps).eval()
    feats = _vectors(DIMS2)
    z = fusion.proj['image'](feats['image']) * fusion.proj['text'](feats['text'])
    z = z.view(B, out_dim, k).sum(-1)
    z = torch.sign(z) * (torch.sqrt(z.abs() + eps) - eps**0.5)
    torch.testing.assert_close(fusion(feats), z / z.norm(dim=-1, keepdim=True))


def test_mfb_signed_sqrt_gradient_finite_at_zero():
    fusion = MFBFusion(DIMS2, out_dim=4, factor_k=2).eval()
    for p in fusion.parameters():
        torch.nn.init.zeros_(p)
    # One unit of the pooled vector is exactly 0, the others are not.
    with torch.no_grad():
        fusion.proj['image'].bias[2:] = 1.0
        fusion.proj['text'].bias[2:] = 1.0
    out = fusion(_vectors(DIMS2))
    out.sum().backward()
    for name, p in fusion.named_parameters():
        assert torch.isfinite(p.grad).all(), name


def test_mfb_missing_modality_is_ignored():
    torch.manual_seed(0)
    fusion = MFBFusion(DIMS3, out_dim=8, factor_k=3).eval()
    feats = _vectors(DIMS3)
    mask = {'audio': torch.tensor([True, True, False, True])}
    out = fusion(feats, mask)
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(B))

    changed = dict(feats, audio=feats['audio'].clone())
    changed['audio'][2] = float('nan')
    torch.testing.assert_close(fusion(changed, mask), out)

    changed = dict(feats, audio=feats['audio'].clone())
    changed['audio'][0] += 1.0
    out2 = fusion(changed, mask)
    assert not torch.allclose(out2[0], out[0])
    torch.testing.assert_close(out2[1:], out[1:])

    # The missing sample equals the product of the remaining two modalities.
    z = fusion.proj['image'](feats['image'][2]) * fusion.proj['text'](feats['text'][2])
    z = z.view(8, 3).sum(-1)
    z = torch.sign(z) * (torch.sqrt(z.abs() + fusion.eps) - fusion.eps**0.5)
    torch.testing.assert_close(out[2], z / z.norm())


def test_mfb_missing_features_do_not_poison_gradients():
    torch.manual_seed(0)
    fusion = MFBFusion(DIMS2, out_dim=8, factor_k=3)
    feats = _vectors(DIMS2)
    feats['text'][1] = float('nan')
    out = fusion(feats, {'text': torch.tensor([True, False, True, True])})
    _assert_all_params_get_grad(fusion, out)


def test_mfb_needs_two_modalities_and_right_sizes():
    with pytest.raises(ValueError, match='at least 2 modalities'):
        MFBFusion({'image': 12}, out_dim=8)
    fusion = MFBFusion(DIMS2, out_dim=8)
    feats = _vectors(DIMS2)
    feats['image'] = torch.randn(B, 11)
    with pytest.raises(ValueError, match=r"in_dims\['image'\]=12"):
        fusion(feats)


# ----------------------------------------------------- TopDownAttentionFusion


def _tda(**kwargs):
    torch.manual_seed(0)
    # out_dim 32: the output is a product of two ReLUs, so with very few units
    # a whole row can be 0 by chance, which would hide the effect of an input.
    cfg = {'in_dims': {'text': 7, 'image': 12}, 'out_dim': 32, 'hidden_dim': 16,
           'dropout': 0.2}
    cfg.update(kwargs)
    return TopDownAttentionFusion(**cfg)


@pytest.mark.parametrize('glimpses', [1, 2])
def test_tda_shape_params_grad(glimpses):
    fusion = _tda(num_glimpses=glimpses)
    d_q, d_v, h, o = 7, 12, 16, 32
    expected = ((d_v + 1) * h + (d_q + 1) * h + h * glimpses + (d_q + 1) * o
                + (glimpses * d_v + 1) * o)
    assert _n_params(fusion) == expected
    tokens = _tokens()
    masks = {'image': torch.ones(B, 6, dtype=torch.bool)}
    masks['image'][0, 4:] = False
    out = fusion(tokens, masks)
    assert out.shape == (B, 1, 32)
    assert fusion.last_attention.shape == (B, glimpses, 6)
    assert not fusion.last_attention.requires_grad
    _assert_all_params_get_grad(fusion, out)
    pooled = fusion.eval().forward_pooled(tokens, masks)
    assert pooled.shape == (B, 32)
    torch.testing.assert_close(pooled, fusion(tokens, masks)[:, 0])


def test_tda_attention_weights_respect_padding():
    fusion = _tda(num_glimpses=2).eval()
    tokens = _tokens()
    v_mask = torch.ones(B, 6, dtype=torch.bool)
    v_mask[0, 3:] = False
    v_mask[2, :1] = False
    fusion(tokens, {'image': v_mask})
    att = fusion.last_attention
    torch.testing.assert_close(att.sum(-1), torch.ones(B, 2))
    assert (att.masked_select(~v_mask.unsqueeze(1).expand_as(att)) == 0).all()
    assert (att.masked_select(v_mask.unsqueeze(1).expand_as(att)) > 0).all()


def test_tda_masked_tokens_do_not_matter():
    fusion = _tda(num_glimpses=2).eval()
    tokens = _tokens()
    masks = {'text': torch.ones(B, 5, dtype=torch.bool),
             'image': torch.ones(B, 6, dtype=torch.bool)}
    masks['text'][1, 3:] = False
    masks['image'][1, 4:] = False
    out = fusion(tokens, masks)
    assert (out[1] != 0).any()

    # Padding (even NaN) in either modality changes nothing.
    changed = {k: v.clone() for k, v in tokens.items()}
    changed['text'][1, 3:] = float('nan')
    changed['image'][1, 4:] = float('nan')
    torch.testing.assert_close(fusion(changed, masks), out)

    # Padding means absent: the padded sample equals the same sample with the
    # padding cut off.
    short = {'text': tokens['text'][1:2, :3], 'image': tokens['image'][1:2, :4]}
    torch.testing.assert_close(fusion(short)[0], out[1])

    # A real context token does change the output of its sample only.
    changed = {k: v.clone() for k, v in tokens.items()}
    changed['image'][1, 0] += 1.0
    out2 = fusion(changed, masks)
    assert not torch.allclose(out2[1], out[1])
    torch.testing.assert_close(out2[[0, 2, 3]], out[[0, 2, 3]])

    # So does a real query token.
    changed = {k: v.clone() for k, v in tokens.items()}
    changed['text'][1, 0] += 1.0
    assert not torch.allclose(fusion(changed, masks)[1], out[1])


def test_tda_fully_masked_context_is_finite_and_zero_attention():
    fusion = _tda()
    tokens = _tokens()
    v_mask = torch.ones(B, 6, dtype=torch.bool)
    v_mask[3] = False
    out = fusion(tokens, {'image': v_mask})
    assert torch.isfinite(out).all()
    assert (fusion.last_attention[3] == 0).all()
    # The attended vector is zero, so the output is ReLU(W_q' q) * ReLU(b_v').
    fusion.eval()
    out = fusion(tokens, {'image': v_mask})
    q = tokens['text'][3].mean(0)
    expected = fusion.fuse_q(q) * torch.relu(fusion.fuse_v[0].bias)
    torch.testing.assert_close(out[3, 0], expected)
    # Gradients stay finite too.
    fusion.train()
    out = fusion(tokens, {'image': v_mask})
    out.sum().backward()
    for name, p in fusion.named_parameters():
        assert torch.isfinite(p.grad).all(), name


def test_tda_matches_reference_computation():
    fusion = _tda(num_glimpses=2).eval()
    tokens = _tokens()
    q = tokens['text'].mean(1)
    v = tokens['image']
    joint = torch.relu(fusion.att_v[0](v)) * torch.relu(fusion.att_q[0](q)).unsqueeze(1)
    att = fusion.att_logits(joint).softmax(dim=1)  # (B, N, G)
    v_att = torch.einsum('bng,bnd->bgd', att, v).flatten(1)
    expected = torch.relu(fusion.fuse_q[0](q)) * torch.relu(fusion.fuse_v[0](v_att))
    torch.testing.assert_close(fusion(tokens)[:, 0], expected)
    torch.testing.assert_close(fusion.last_attention, att.transpose(1, 2))


def test_tda_config_errors():
    with pytest.raises(ValueError, match="query='question'.*context='image'"):
        _tda(query='question')
    with pytest.raises(ValueError, match='exactly two modalities'):
        _tda(in_dims={'text': 7, 'image': 12, 'audio': 3})
    fusion = _tda()
    tokens = _tokens(d_v=11)
    with pytest.raises(ValueError, match=r'image tokens of shape \(B, N, 12\)'):
        fusion(tokens)
    with pytest.raises(ValueError, match=r"masks\['image'\]"):
        fusion(_tokens(), {'image': torch.ones(B, 5, dtype=torch.bool)})
