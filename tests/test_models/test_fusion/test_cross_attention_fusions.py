"""CrossAttentionFusion, CoAttentionFusion and GatedCrossAttentionFusion."""
import pytest
import torch
from fusion_checks import (
    assert_every_parameter_gets_a_gradient,
    build_fusion,
    n_params,
    padding_masks,
    random_tokens,
)

import mmfusion.models.fusion.cross_attention  # noqa: F401  (registers the modules)
from mmfusion.models.fusion.base import BaseTokenFusion
from mmfusion.models.fusion.cross_attention import (
    CoAttentionFusion,
    CrossAttentionFusion,
    GatedCrossAttentionFusion,
)
from mmfusion.models.layers import masked_cross_attention

B = 4
DIMS2 = {'text': 7, 'image': 12}
DIMS3 = {'text': 7, 'image': 12, 'audio': 5}
LENS = {'text': 5, 'image': 6, 'audio': 3}
# Sample 1 has padding in every modality; sample 3 has no image at all.
REAL = {'text': [5, 3, 5, 2], 'image': [6, 4, 2, 0], 'audio': [3, 1, 3, 2]}
E, F, H = 8, 12, 2


def block_params(e: int, f: int) -> int:
    """The documented per-block count of CrossAttentionBlock."""
    return 4 * e * e + 2 * e * f + 11 * e + f


def tokens_and_masks(dims: dict, seed: int = 0) -> tuple[dict, dict]:
    lens = {m: LENS[m] for m in dims}
    return (random_tokens(dims, lens, batch=B, seed=seed),
            padding_masks(lens, {m: REAL[m] for m in dims}, batch=B))


def make(cls, dims=DIMS2, **kw):
    torch.manual_seed(0)
    cfg = dict(in_dims=dims, out_dim=E, num_heads=H, ffn_dim=F, num_layers=2, dropout=0.0)
    if cls is not CoAttentionFusion:
        cfg['query'] = 'text'
    cfg.update(kw)
    return cls(**cfg).eval()


def open_gates(fusion: GatedCrossAttentionFusion, value: float = 0.7) -> None:
    with torch.no_grad():
        for layer in fusion.layers:
            layer.alpha_attn.fill_(value)
            layer.alpha_ffn.fill_(-value)


def with_nan_padding(tokens: dict, masks: dict) -> dict:
    return {m: t.masked_fill(~masks[m].unsqueeze(-1), float('nan')) for m, t in tokens.items()}


def no_attention_path(layers, x: torch.Tensor) -> torch.Tensor:
    """What a stream becomes in ``layers`` when the attention contributes nothing."""
    for layer in layers:
        update = layer.ffn(layer.norm_ffn(x))
        if layer.gated:
            update = torch.tanh(layer.alpha_ffn) * update
        x = x + update
    return x


# ---------------------------------------------------------------------- builds


@pytest.mark.parametrize('cfg', [
    dict(type='CrossAttentionFusion', in_dims=DIMS3, out_dim=8, query='text', num_heads=2),
    dict(type='CoAttentionFusion', in_dims=DIMS2, out_dim=8, num_heads=2),
    dict(type='GatedCrossAttentionFusion', in_dims=DIMS2, out_dim=8, query='text',
         num_heads=2),
])
def test_builds_from_config(cfg):
    fusion = build_fusion(cfg)
    assert isinstance(fusion, BaseTokenFusion)
    assert fusion.input_form == 'token'
    assert fusion.embed_dim == 8 and fusion.ffn_dim == 32


# ------------------------------------------------------- CrossAttentionFusion


@pytest.mark.parametrize('dims', [DIMS2, DIMS3])
@pytest.mark.parametrize('embed_dim', [None, 6])
def test_cross_shapes_params_grad(dims, embed_dim):
    fusion = make(CrossAttentionFusion, dims, embed_dim=embed_dim).train()
    e = embed_dim or E
    n_ctx = len(dims) - 1
    expected = (sum((d + 1) * e for d in dims.values())
                + (n_ctx * e if n_ctx > 1 else 0)
                + 2 * block_params(e, F) + 2 * e
                + ((e + 1) * E if e != E else 0))
    assert n_params(fusion) == expected
    assert fusion.context == [m for m in dims if m != 'text']
    assert (fusion.type_embed is None) == (n_ctx == 1)

    tokens, masks = tokens_and_masks(dims)
    out = fusion(with_nan_padding(tokens, masks), masks)
    assert out.shape == (B, LENS['text'], E)
    assert torch.isfinite(out).all()
    assert_every_parameter_gets_a_gradient(fusion, out)
    pooled = fusion.forward_pooled(tokens, masks)
    assert pooled.shape == (B, E)


def test_cross_pooled_is_mean_over_real_query_tokens():
    fusion = make(CrossAttentionFusion, DIMS3)
    tokens, masks = tokens_and_masks(DIMS3)
    out = fusion(tokens, masks)
    # Padding query positions are exactly zero, real ones are not.
    assert (out[~masks['text']] == 0).all()
    assert (out[masks['text']].abs().sum(-1) > 0).all()
    pooled = fusion.forward_pooled(tokens, masks)
    for b, n in enumerate(REAL['text']):
        torch.testing.assert_close(pooled[b], out[b, :n].mean(0))


def test_cross_padding_never_reaches_real_tokens():
    fusion = make(CrossAttentionFusion, DIMS3)
    tokens, masks = tokens_and_masks(DIMS3)
    out = fusion(tokens, masks)

    # Padding in any modality, NaN or other random values, changes nothing.
    torch.testing.assert_close(fusion(with_nan_padding(tokens, masks), masks), out)
    noise = random_tokens(DIMS3, LENS, batch=B, seed=5)
    changed = {m: torch.where(masks[m].unsqueeze(-1), t, noise[m]) for m, t in tokens.items()}
    torch.testing.assert_close(fusion(changed, masks), out)

    # Padding means absent: sample 1 equals the same sample with its padding cut off.
    short = {m: tokens[m][1:2, :REAL[m][1]] for m in DIMS3}
    torch.testing.assert_close(fusion(short)[0], out[1, :REAL['text'][1]])

    # A real context token changes every real query token of its sample, and nothing else.
    changed = {m: t.clone() for m, t in tokens.items()}
    changed['audio'][1, 0] += 1.0
    out2 = fusion(changed, masks)
    n = REAL['text'][1]
    assert (out2[1, :n] - out[1, :n]).abs().amax(-1).min() > 1e-4
    torch.testing.assert_close(out2[[0, 2, 3]], out[[0, 2, 3]])

    # Query tokens do not attend to each other: a real query token changes only itself.
    changed = {m: t.clone() for m, t in tokens.items()}
    changed['text'][0, 2] += 1.0
    out2 = fusion(changed, masks)
    assert not torch.allclose(out2[0, 2], out[0, 2])
    keep = torch.ones(B, LENS['text'], dtype=torch.bool)
    keep[0, 2] = False
    torch.testing.assert_close(out2[keep], out[keep])


def test_cross_missing_context_modality_drops_out():
    fusion = make(CrossAttentionFusion, DIMS3)
    tokens, masks = tokens_and_masks(DIMS3)
    out = fusion(with_nan_padding(tokens, masks), masks)
    # Sample 3 has no image: the same as passing it with no image tokens at all.
    only_audio = {'text': tokens['text'][3:4], 'image': torch.zeros(1, 0, 12),
                  'audio': tokens['audio'][3:4]}
    only_masks = {'text': masks['text'][3:4], 'audio': masks['audio'][3:4]}
    torch.testing.assert_close(fusion(only_audio, only_masks)[0], out[3])


def test_cross_fully_masked_context_is_residual_only():
    fusion = make(CrossAttentionFusion, DIMS3, embed_dim=6).train()
    tokens, masks = tokens_and_masks(DIMS3)
    masks = dict(masks, image=masks['image'].clone(), audio=masks['audio'].clone())
    masks['image'][2] = False
    masks['audio'][2] = False
    out = fusion(with_nan_padding(tokens, masks), masks)
    assert torch.isfinite(out).all()
    out.sum().backward()
    for name, p in fusion.named_parameters():
        assert torch.isfinite(p.grad).all(), name

    fusion.eval()
    out = fusion(with_nan_padding(tokens, masks), masks)
    x = no_attention_path(fusion.layers, fusion.query_proj(tokens['text'][2]))
    torch.testing.assert_close(out[2], fusion.out_proj(fusion.norm_out(x)))
    # The other samples do use their context.
    assert not torch.allclose(
        out[0], fusion.out_proj(fusion.norm_out(
            no_attention_path(fusion.layers, fusion.query_proj(tokens['text'][0])))))


def test_cross_matches_reference_computation():
    """One layer, one context modality, no padding, written out by hand."""
    fusion = make(CrossAttentionFusion, DIMS2, num_layers=1)
    tokens, _ = tokens_and_masks(DIMS2)
    layer = fusion.layers[0]
    x = fusion.query_proj(tokens['text'])
    c = layer.norm_context(fusion.context_proj['image'](tokens['image']))
    q = layer.norm_query(x)
    w_q, w_k, w_v = layer.attn.in_proj_weight.chunk(3)
    b_q, b_k, b_v = layer.attn.in_proj_bias.chunk(3)

    def heads(t):
        return t.unflatten(-1, (H, E // H)).transpose(1, 2)  # (B, H, N, E / H)

    att = torch.softmax(heads(q @ w_q.T + b_q) @ heads(c @ w_k.T + b_k).transpose(-1, -2)
                        / (E // H) ** 0.5, dim=-1)
    attended = (att @ heads(c @ w_v.T + b_v)).transpose(1, 2).flatten(2)
    x = x + layer.attn.out_proj(attended)
    x = x + layer.ffn(layer.norm_ffn(x))
    torch.testing.assert_close(fusion(tokens), fusion.norm_out(x))


class _MinusInfAttention(torch.nn.Module):
    """Single-head attention with ``-inf`` logits on padding, like the kernels that
    return NaN for a fully masked row."""

    def forward(self, query, key, value, key_padding_mask=None, need_weights=False):
        logits = query @ key.transpose(1, 2)
        logits = logits.masked_fill(key_padding_mask.unsqueeze(1), float('-inf'))
        return logits.softmax(-1) @ value, None


def test_masked_cross_attention_guards_fully_masked_rows():
    g = torch.Generator().manual_seed(0)
    query, context = torch.randn(3, 2, 4, generator=g), torch.randn(3, 5, 4, generator=g)
    context.requires_grad_(True)
    mask = torch.tensor([[True] * 5, [True, True, False, False, False], [False] * 5])
    attn = _MinusInfAttention()
    # Without the guard the last sample would be NaN.
    assert torch.isnan(attn(query, context, context, ~mask)[0][2]).all()
    out = masked_cross_attention(attn, query, context, mask)
    assert (out[2] == 0).all()
    torch.testing.assert_close(out[:2], attn(query[:2], context[:2], context[:2],
                                             ~mask[:2])[0])
    # Padding keys get zero weight: sample 1 equals its first two tokens alone.
    torch.testing.assert_close(
        out[1], attn(query[1:2], context[1:2, :2], context[1:2, :2],
                     ~mask[1:2, :2])[0][0])
    out.sum().backward()
    assert torch.isfinite(context.grad).all()
    assert (context.grad[2] == 0).all() and (context.grad[1, 2:] == 0).all()


def test_cross_config_errors():
    with pytest.raises(ValueError, match="CrossAttentionFusion: query='question' is not in"):
        make(CrossAttentionFusion, query='question')
    with pytest.raises(ValueError, match='at least one context modality'):
        make(CrossAttentionFusion, {'text': 7})
    with pytest.raises(ValueError, match="context must be distinct.*'text'"):
        make(CrossAttentionFusion, context=['image', 'text'])
    with pytest.raises(ValueError, match="context must be distinct"):
        make(CrossAttentionFusion, DIMS3, context=['image', 'image'])
    with pytest.raises(ValueError, match=r"context \['depth'\] not in in_dims"):
        make(CrossAttentionFusion, context='depth')
    with pytest.raises(ValueError, match=r"neither query nor context: \['audio'\]"):
        make(CrossAttentionFusion, DIMS3, context='image')
    with pytest.raises(ValueError, match=r'embed_dim \(8\) must be a positive multiple of '
                                         r'num_heads \(3\)'):
        make(CrossAttentionFusion, num_heads=3)
    with pytest.raises(ValueError, match='num_layers must be >= 1, got 0'):
        make(CrossAttentionFusion, num_layers=0)
    with pytest.raises(ValueError, match='ffn_dim must be >= 1, got 0'):
        make(CrossAttentionFusion, ffn_dim=0)
    with pytest.raises(ValueError, match=r'dropout must be in \[0, 1\), got 1.0'):
        make(CrossAttentionFusion, dropout=1.0)

    fusion = make(CrossAttentionFusion)
    tokens, masks = tokens_and_masks(DIMS2)
    with pytest.raises(ValueError, match=r'image tokens of shape \(B, N, 12\)'):
        fusion(dict(tokens, image=torch.randn(B, 6, 11)))
    with pytest.raises(KeyError, match="expects modality 'image'"):
        fusion({'text': tokens['text']})
    with pytest.raises(ValueError, match=r"masks\['image'\] must have shape \(4, 6\)"):
        fusion(tokens, dict(masks, image=masks['image'][:, :5]))


# ---------------------------------------------------------- CoAttentionFusion


@pytest.mark.parametrize('embed_dim', [None, 6])
def test_co_shapes_params_grad(embed_dim):
    fusion = make(CoAttentionFusion, embed_dim=embed_dim).train()
    e = embed_dim or E
    expected = ((7 + 1) * e + (12 + 1) * e + 2 * 2 * block_params(e, F) + 4 * e
                + ((e + 1) * E if e != E else 0) + (2 * E + 1) * E)
    assert n_params(fusion) == expected

    tokens, masks = tokens_and_masks(DIMS2)
    tokens = with_nan_padding(tokens, masks)
    out = fusion(tokens, masks)
    assert out.shape == (B, LENS['text'] + LENS['image'], E)
    pooled = fusion.forward_pooled(tokens, masks)
    assert pooled.shape == (B, E)
    assert torch.isfinite(out).all() and torch.isfinite(pooled).all()
    # The pooling Linear is only used by forward_pooled: check both views together.
    assert_every_parameter_gets_a_gradient(fusion, torch.cat([out.flatten(1), pooled], 1))


def test_co_matches_reference_computation():
    """Both directions read the previous layer's states; output order follows in_dims."""
    fusion = make(CoAttentionFusion)
    tokens, masks = tokens_and_masks(DIMS2)
    a = fusion.proj['text'](tokens['text'].masked_fill(~masks['text'].unsqueeze(-1), 0))
    v = fusion.proj['image'](tokens['image'].masked_fill(~masks['image'].unsqueeze(-1), 0))
    for layer in fusion.layers:
        a, v = layer['text'](a, v, masks['image']), layer['image'](v, a, masks['text'])
    a = fusion.norm_out['text'](a) * masks['text'].unsqueeze(-1)
    v = fusion.norm_out['image'](v) * masks['image'].unsqueeze(-1)
    out = fusion(tokens, masks)
    torch.testing.assert_close(out, torch.cat([a, v], dim=1))

    mean_a = a.sum(1) / masks['text'].sum(1, keepdim=True)
    mean_v = v.sum(1) / masks['image'].sum(1, keepdim=True).clamp(min=1)
    torch.testing.assert_close(fusion.forward_pooled(tokens, masks),
                               fusion.pool(torch.cat([mean_a, mean_v], -1)))


def test_co_padding_never_reaches_real_tokens():
    fusion = make(CoAttentionFusion)
    tokens, masks = tokens_and_masks(DIMS2)
    out = fusion(tokens, masks)
    pooled = fusion.forward_pooled(tokens, masks)
    real = torch.cat([masks['text'], masks['image']], dim=1)
    assert (out[~real] == 0).all()

    torch.testing.assert_close(fusion(with_nan_padding(tokens, masks), masks), out)
    torch.testing.assert_close(fusion.forward_pooled(with_nan_padding(tokens, masks), masks),
                               pooled)
    noise = random_tokens(DIMS2, LENS, batch=B, seed=5)
    changed = {m: torch.where(masks[m].unsqueeze(-1), t, noise[m]) for m, t in tokens.items()}
    torch.testing.assert_close(fusion(changed, masks), out)

    # Padding means absent.
    short = {m: tokens[m][1:2, :REAL[m][1]] for m in DIMS2}
    expected = torch.cat([out[1, :REAL['text'][1]],
                          out[1, LENS['text']:LENS['text'] + REAL['image'][1]]])
    torch.testing.assert_close(fusion(short)[0], expected)

    # A real image token changes the real tokens of both streams of its sample only.
    changed = {m: t.clone() for m, t in tokens.items()}
    changed['image'][0, 1] += 1.0
    out2 = fusion(changed, masks)
    assert (out2[0] - out[0]).abs().amax(-1)[real[0]].min() > 1e-4
    torch.testing.assert_close(out2[1:], out[1:])


def test_co_fully_masked_modality():
    fusion = make(CoAttentionFusion).train()
    tokens, masks = tokens_and_masks(DIMS2)  # sample 3 has no image
    out = fusion(with_nan_padding(tokens, masks), masks)
    pooled = fusion.forward_pooled(with_nan_padding(tokens, masks), masks)
    assert torch.isfinite(out).all() and torch.isfinite(pooled).all()
    (out.sum() + pooled.sum()).backward()
    for name, p in fusion.named_parameters():
        assert torch.isfinite(p.grad).all(), name

    fusion.eval()
    out = fusion(with_nan_padding(tokens, masks), masks)
    n = REAL['text'][3]
    # The text stream of sample 3 only goes through residual + FFN; the rest of it (text
    # padding and the whole image stream) is 0.
    x = no_attention_path([layer['text'] for layer in fusion.layers],
                          fusion.proj['text'](tokens['text'][3, :n]))
    torch.testing.assert_close(out[3, :n], fusion.norm_out['text'](x))
    assert (out[3, n:] == 0).all()
    # Its pooled summary keeps the text half.
    mean_text = fusion.norm_out['text'](x).mean(0)
    torch.testing.assert_close(fusion.forward_pooled(tokens, masks)[3],
                               fusion.pool(torch.cat([mean_text, torch.zeros(E)])))


def test_co_config_errors():
    with pytest.raises(ValueError, match='CoAttentionFusion fuses exactly two modalities'):
        make(CoAttentionFusion, DIMS3)
    with pytest.raises(ValueError, match='exactly two modalities'):
        make(CoAttentionFusion, {'text': 7})
    with pytest.raises(ValueError, match=r'CoAttentionFusion: embed_dim \(6\) must be a '
                                         r'positive multiple of num_heads \(4\)'):
        make(CoAttentionFusion, embed_dim=6, num_heads=4)
    with pytest.raises(ValueError, match='CoAttentionFusion: dropout'):
        make(CoAttentionFusion, dropout=-0.1)
    fusion = make(CoAttentionFusion)
    tokens, masks = tokens_and_masks(DIMS2)
    with pytest.raises(ValueError, match=r'text tokens of shape \(B, N, 7\)'):
        fusion(dict(tokens, text=torch.randn(B, 5)))
    with pytest.raises(ValueError, match=r"CoAttentionFusion: masks\['text'\]"):
        fusion(tokens, dict(masks, text=masks['text'][:2]))


# ---------------------------------------------------- GatedCrossAttentionFusion


@pytest.mark.parametrize('dims', [DIMS2, DIMS3])
@pytest.mark.parametrize('embed_dim', [None, 6])
def test_gated_shapes_and_params(dims, embed_dim):
    fusion = make(GatedCrossAttentionFusion, dims, embed_dim=embed_dim)
    e = embed_dim or E
    n_ctx = len(dims) - 1
    expected = (sum((d + 1) * e for d in dims.values())
                + (n_ctx * e if n_ctx > 1 else 0)
                + 2 * (block_params(e, F) + 2)
                + ((e + 1) * E if e != E else 0))
    assert n_params(fusion) == expected
    tokens, masks = tokens_and_masks(dims)
    assert fusion(tokens, masks).shape == (B, LENS['text'], E)
    assert fusion.forward_pooled(tokens, masks).shape == (B, E)


@pytest.mark.parametrize('embed_dim', [None, 6])
def test_gated_is_the_projected_query_at_init(embed_dim):
    fusion = make(GatedCrossAttentionFusion, DIMS3, embed_dim=embed_dim)
    for layer in fusion.layers:
        assert layer.alpha_attn.item() == 0 and layer.alpha_ffn.item() == 0
    tokens, masks = tokens_and_masks(DIMS3)
    out = fusion(tokens, masks)
    expected = fusion.out_proj(fusion.query_proj(tokens['text']))
    real = masks['text']
    assert torch.equal(out[real], expected[real])
    assert (out[~real] == 0).all()
    if embed_dim is None:
        assert torch.equal(out[real], fusion.query_proj(tokens['text'])[real])
    # With open gates the context matters.
    open_gates(fusion)
    assert not torch.allclose(fusion(tokens, masks)[real], expected[real])


def test_gated_gradients_at_init_reach_only_the_alphas_and_the_projections():
    fusion = make(GatedCrossAttentionFusion, DIMS3).train()
    tokens, masks = tokens_and_masks(DIMS3)
    out = fusion(tokens, masks)
    (out * torch.randn_like(out)).sum().backward()
    for name, p in fusion.named_parameters():
        if 'alpha' in name or name.startswith('query_proj'):
            assert p.grad.abs().sum() > 0, name
        else:
            assert p.grad is None or (p.grad == 0).all(), name


@pytest.mark.parametrize('dims', [DIMS2, DIMS3])
def test_gated_every_parameter_gets_a_gradient_with_open_gates(dims):
    fusion = make(GatedCrossAttentionFusion, dims, embed_dim=6).train()
    open_gates(fusion)
    tokens, masks = tokens_and_masks(dims)
    out = fusion(with_nan_padding(tokens, masks), masks)
    assert torch.isfinite(out).all()
    assert_every_parameter_gets_a_gradient(fusion, out)


def test_gated_matches_reference_computation():
    """One layer, no padding: ``y + tanh(a_attn) Attn(LN y, LN x)``, then the gated FFN."""
    fusion = make(GatedCrossAttentionFusion, DIMS2, num_layers=1)
    open_gates(fusion)
    layer = fusion.layers[0]
    tokens, _ = tokens_and_masks(DIMS2)
    y = fusion.query_proj(tokens['text'])
    x = layer.norm_context(fusion.context_proj['image'](tokens['image']))
    attended = layer.attn(layer.norm_query(y), x, x)[0]
    y = y + torch.tanh(torch.tensor(0.7)) * attended
    y = y + torch.tanh(torch.tensor(-0.7)) * layer.ffn(layer.norm_ffn(y))
    torch.testing.assert_close(fusion(tokens), y)


def test_gated_padding_and_fully_masked_context():
    fusion = make(GatedCrossAttentionFusion, DIMS2)
    open_gates(fusion)
    tokens, masks = tokens_and_masks(DIMS2)  # sample 3 has no image
    out = fusion(tokens, masks)
    torch.testing.assert_close(fusion(with_nan_padding(tokens, masks), masks), out)
    short = {m: tokens[m][1:2, :REAL[m][1]] for m in DIMS2}
    torch.testing.assert_close(fusion(short)[0], out[1, :REAL['text'][1]])

    # No context: only the gated FFN residual acts, and nothing is NaN.
    n = REAL['text'][3]
    x = no_attention_path(fusion.layers, fusion.query_proj(tokens['text'][3, :n]))
    torch.testing.assert_close(out[3, :n], x)
    # A present context does contribute.
    x0 = no_attention_path(fusion.layers, fusion.query_proj(tokens['text'][0]))
    assert not torch.allclose(out[0], x0)

    # Changing a real image token changes its own sample only.
    changed = dict(tokens, image=tokens['image'].clone())
    changed['image'][2, 0] += 1.0
    out2 = fusion(changed, masks)
    assert not torch.allclose(out2[2], out[2])
    torch.testing.assert_close(out2[[0, 1, 3]], out[[0, 1, 3]])


def test_gated_config_errors():
    with pytest.raises(ValueError, match="GatedCrossAttentionFusion: query='image' is not"):
        make(GatedCrossAttentionFusion, {'text': 7, 'video': 3}, query='image')
    with pytest.raises(ValueError, match='GatedCrossAttentionFusion: num_layers'):
        make(GatedCrossAttentionFusion, num_layers=-1)
