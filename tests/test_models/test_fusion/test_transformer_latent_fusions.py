"""SingleStreamFusion, BottleneckFusion, PerceiverFusion and QFormerFusion."""
import math

import pytest
import torch
from fusion_checks import (
    assert_every_parameter_gets_a_gradient,
    build_fusion,
    n_params,
    padding_masks,
    random_tokens,
)

from mmfusion.models.fusion.base import BaseTokenFusion

# Importing the submodules registers the modules (before fusion/__init__ lists them).
from mmfusion.models.fusion.latent import PerceiverFusion, QFormerFusion
from mmfusion.models.fusion.transformer import BottleneckFusion, SingleStreamFusion

B = 4
DIMS2 = {'text': 7, 'image': 12}
DIMS3 = {'text': 7, 'image': 12, 'audio': 5}
LENS = {'text': 5, 'image': 6, 'audio': 3}
# Sample 1 has padding in every modality; sample 3 has no image at all.
REAL = {'text': [5, 3, 5, 2], 'image': [6, 4, 2, 0], 'audio': [3, 1, 3, 2]}
E, F, H, OUT = 8, 12, 2, 6
NUM_LATENTS = 3

# name -> (type, extra config); dropout 0 so outputs are deterministic.
CLASSES = {cls.__name__: cls for cls in
           (SingleStreamFusion, BottleneckFusion, PerceiverFusion, QFormerFusion)}
VARIANTS = {
    'single': ('SingleStreamFusion', dict(num_layers=2)),
    'bottleneck': ('BottleneckFusion', dict(num_layers=3, fusion_layer=1, num_bottlenecks=2)),
    'perceiver': ('PerceiverFusion', dict(num_latents=NUM_LATENTS, num_blocks=2,
                                          num_self_attn_layers=1)),
    'qformer': ('QFormerFusion', dict(num_queries=NUM_LATENTS, num_layers=3,
                                      cross_attention_freq=2)),
    'qformer_text': ('QFormerFusion', dict(num_queries=NUM_LATENTS, num_layers=3,
                                           cross_attention_freq=2, text_modality='text')),
}
ALL = list(VARIANTS)
DIMS = pytest.mark.parametrize('dims', [DIMS2, DIMS3], ids=['2mod', '3mod'])


def config(variant: str, dims: dict, out_dim: int = OUT, **kw) -> dict:
    type_name, extra = VARIANTS[variant]
    cfg = dict(type=type_name, in_dims=dims, out_dim=out_dim, embed_dim=E, num_heads=H,
               ffn_dim=F, dropout=0.0, **extra)
    if type_name in ('SingleStreamFusion', 'BottleneckFusion') and 'max_positions' not in kw:
        # As long as the inputs, so that every position embedding is used.
        cfg['max_positions'] = {m: LENS[m] for m in dims}
    cfg.update(kw)
    return cfg


def make(variant: str, dims: dict = DIMS2, seed: int = 0, **kw) -> BaseTokenFusion:
    torch.manual_seed(seed)
    return build_fusion(config(variant, dims, **kw))


def tokens_and_masks(dims: dict, seed: int = 0) -> tuple[dict, dict]:
    lens = {m: LENS[m] for m in dims}
    return (random_tokens(dims, lens, batch=B, seed=seed),
            padding_masks(lens, {m: REAL[m] for m in dims}, batch=B))


def output_length(variant: str, dims: dict) -> int:
    if variant == 'single':
        return 1 + sum(LENS[m] for m in dims)
    if variant == 'bottleneck':
        return sum(1 + LENS[m] for m in dims)
    return NUM_LATENTS


def output_positions(variant: str, masks: dict, b: int) -> torch.Tensor:
    """Bool (N,) over the output positions of sample ``b``: those that survive
    when its padding is cut off (all of them for latents/queries)."""
    if variant == 'single':
        return torch.cat([torch.ones(1, dtype=torch.bool), *(mk[b] for mk in masks.values())])
    if variant == 'bottleneck':
        return torch.cat([torch.cat([torch.ones(1, dtype=torch.bool), mk[b]])
                          for mk in masks.values()])
    return torch.ones(NUM_LATENTS, dtype=torch.bool)


# ----------------------------------------------------------- parameter formulas


def layer_params(e: int, f: int) -> int:
    """nn.TransformerEncoderLayer: attention, feed-forward, two LayerNorms."""
    return 4 * e * e + 2 * e * f + 9 * e + f


def common_params(dims: dict, e: int, out_dim: int) -> int:
    """Input projections, final LayerNorm and the output Linear."""
    proj = sum((d + 1) * e for d in dims.values())
    return proj + 2 * e + (0 if e == out_dim else (e + 1) * out_dim)


def expected_params(variant: str, dims: dict, e: int, out_dim: int) -> int:
    _, kw = VARIANTS[variant]
    m = len(dims)
    positions = sum(LENS[name] for name in dims) * e
    if variant == 'single':
        return (common_params(dims, e, out_dim) + positions + m * e + e
                + kw['num_layers'] * layer_params(e, F))
    if variant == 'bottleneck':
        layers = kw['num_layers']
        bottlenecks = kw['num_bottlenecks'] * e if kw['fusion_layer'] < layers else 0
        # Per-modality final LayerNorms: 2 M E, of which the common 2 E is one.
        return (common_params(dims, e, out_dim) + positions + m * e + bottlenecks
                + m * layers * layer_params(e, F) + 2 * (m - 1) * e)
    if variant == 'perceiver':
        cross = 4 * e * e + 2 * e * F + 11 * e + F
        return (common_params(dims, e, out_dim) + m * e + kw['num_latents'] * e + cross
                + kw['num_self_attn_layers'] * layer_params(e, F))
    layers, freq = kw['num_layers'], kw['cross_attention_freq']
    text = kw.get('text_modality') is not None
    num_context = m - 1 if text else m
    return (common_params(dims, e, out_dim) + num_context * e + kw['num_queries'] * e
            + layers * layer_params(e, F) + math.ceil(layers / freq) * (4 * e * e + 8 * e)
            + text * (layers - 1) * (2 * e * F + F + 3 * e))


# ------------------------------------------------------------------ the checks


@pytest.mark.parametrize('variant', ALL)
@DIMS
def test_build_and_shapes(variant, dims):
    fusion = make(variant, dims)
    assert type(fusion) is CLASSES[VARIANTS[variant][0]]
    assert isinstance(fusion, BaseTokenFusion) and fusion.input_form == 'token'
    tokens, masks = tokens_and_masks(dims)
    out = fusion(tokens, masks)
    assert out.shape == (B, output_length(variant, dims), OUT)
    pooled = fusion.forward_pooled(tokens, masks)
    assert pooled.shape == (B, OUT)
    assert torch.isfinite(out).all() and torch.isfinite(pooled).all()
    # Without masks every token is real.
    assert fusion(tokens).shape == out.shape


@pytest.mark.parametrize('variant', ALL)
@DIMS
def test_every_parameter_gets_a_gradient(variant, dims):
    fusion = make(variant, dims).train()
    tokens, _ = tokens_and_masks(dims)
    assert_every_parameter_gets_a_gradient(fusion, fusion(tokens))


@pytest.mark.parametrize('variant', ALL)
@DIMS
@pytest.mark.parametrize('out_dim', [OUT, E], ids=['out_proj', 'no_out_proj'])
def test_parameter_count_matches_docstring_formula(variant, dims, out_dim):
    fusion = make(variant, dims, out_dim=out_dim)
    assert n_params(fusion) == expected_params(variant, dims, E, out_dim)
    assert isinstance(fusion.out_proj, torch.nn.Identity) == (out_dim == E)


@pytest.mark.parametrize('variant', ALL)
@DIMS
def test_padding_is_the_same_as_cutting_it_off(variant, dims):
    """Each sample's output equals running that sample alone with its padding
    removed (an absent modality as a zero-length sequence): the key padding
    mask is exact, and padding outputs are zero."""
    fusion = make(variant, dims).eval()
    tokens, masks = tokens_and_masks(dims)
    out = fusion(tokens, masks)
    pooled = fusion.forward_pooled(tokens, masks)
    for b in range(B):
        alone = {m: tokens[m][b:b + 1, :REAL[m][b]] for m in dims}
        keep = output_positions(variant, masks, b)
        torch.testing.assert_close(out[b, keep], fusion(alone)[0])
        torch.testing.assert_close(pooled[b], fusion.forward_pooled(alone)[0])
        assert (out[b, ~keep] == 0).all()


@pytest.mark.parametrize('variant', ALL)
@DIMS
def test_masked_tokens_never_leak(variant, dims):
    """NaN or other values in padding and in the absent image of sample 3 leave
    every output unchanged and finite, and the gradients finite; changing a
    real token changes only its own sample."""
    fusion = make(variant, dims).train()
    tokens, masks = tokens_and_masks(dims)
    out = fusion(tokens, masks)

    for fill in (float('nan'), 'random'):
        changed = {}
        for m, x in tokens.items():
            other = torch.randn_like(x) if fill == 'random' else torch.full_like(x, fill)
            changed[m] = torch.where(masks[m].unsqueeze(-1), x, other)
        assert torch.isnan(changed['image'][3]).all() == (fill != 'random')
        out2 = fusion(changed, masks)
        torch.testing.assert_close(out2, out)
        fusion.zero_grad()
        out2.sum().backward()
        for name, p in fusion.named_parameters():
            assert torch.isfinite(p.grad).all(), name

    changed = dict(tokens, image=tokens['image'].clone())
    changed['image'][0, 0] += 1.0
    out2 = fusion(changed, masks)
    assert not torch.allclose(out2[0], out[0])
    torch.testing.assert_close(out2[1:], out[1:])


@pytest.mark.parametrize('variant', ALL)
def test_absent_modality_equals_the_model_without_it(variant):
    """Audio masked out everywhere gives the same outputs as the same weights
    built for text and image only: the absent modality contributes nothing."""
    full, small = make(variant, DIMS3).eval(), make(variant, DIMS2).eval()
    small_state = small.state_dict()
    # Audio comes last, so the first rows of the type embeddings are shared.
    small.load_state_dict({k: v[:small_state[k].shape[0]] for k, v in full.state_dict().items()
                           if k in small_state})
    tokens, masks = tokens_and_masks(DIMS3)
    masks['audio'] = torch.zeros_like(masks['audio'])
    out = full(tokens, masks)
    two = ({m: tokens[m] for m in DIMS2}, {m: masks[m] for m in DIMS2})
    expected = small(*two)
    torch.testing.assert_close(out[:, :expected.shape[1]], expected)
    assert (out[:, expected.shape[1]:] == 0).all()  # the audio positions, if any
    torch.testing.assert_close(full.forward_pooled(tokens, masks), small.forward_pooled(*two))


@pytest.mark.parametrize('variant', ALL)
def test_eval_fast_path_matches_training_path(variant):
    """PyTorch's inference fast path of nn.TransformerEncoderLayer and
    nn.MultiheadAttention handles the float key padding bias the same way."""
    fusion = make(variant, DIMS3)
    tokens, masks = tokens_and_masks(DIMS3)
    out = fusion.train()(tokens, masks)
    with torch.no_grad():
        fast = fusion.eval()(tokens, masks)
    torch.testing.assert_close(fast, out.detach())


@pytest.mark.parametrize('variant', ALL)
def test_mask_shape_and_inputs_are_checked(variant):
    fusion = make(variant, DIMS2)
    tokens, masks = tokens_and_masks(DIMS2)
    with pytest.raises(ValueError, match=r"masks\['text'\] must have shape \(4, 5\)"):
        fusion(tokens, dict(masks, text=masks['text'][:, :4]))
    with pytest.raises(KeyError, match='image'):
        fusion({'text': tokens['text']})
    with pytest.raises(ValueError, match=r'expected image tokens of shape \(B, N, 12\)'):
        fusion(dict(tokens, image=tokens['image'][..., :5]))


# ------------------------------------------------------------- module specific


def test_single_stream_pooled_is_the_cls_output():
    fusion = make('single', DIMS3).eval()
    tokens, masks = tokens_and_masks(DIMS3)
    torch.testing.assert_close(fusion.forward_pooled(tokens, masks),
                               fusion(tokens, masks)[:, 0])


def test_single_stream_tokens_longer_than_max_positions():
    fusion = make('single', DIMS2, max_positions=4)
    tokens, _ = tokens_and_masks(DIMS2)
    with pytest.raises(ValueError, match=r"text has 5 tokens but max_positions\['text'\]=4"):
        fusion(tokens)
    # A per-modality dict sizes each table on its own.
    fusion = make('single', DIMS2, max_positions=dict(text=5, image=9))
    assert fusion.pos_embed['image'].shape == (9, E)
    assert fusion(tokens).shape == (B, 1 + 5 + 6, OUT)


def test_single_stream_type_embeddings_tell_the_modalities_apart():
    """With equal projections and position tables for two modalities, swapping
    their inputs changes the [CLS] output only through the type embeddings."""
    dims = {'a': 4, 'b': 4}
    fusion = make('single', dims, max_positions=3).eval()
    fusion.proj['b'].load_state_dict(fusion.proj['a'].state_dict())
    fusion.pos_embed['b'].data.copy_(fusion.pos_embed['a'])
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(2, 3, 4, generator=g), torch.randn(2, 3, 4, generator=g)
    pooled = fusion.forward_pooled
    assert not torch.allclose(pooled({'a': x, 'b': y}), pooled({'a': y, 'b': x}))
    fusion.type_embed.data[1] = fusion.type_embed.data[0]
    torch.testing.assert_close(pooled({'a': x, 'b': y}), pooled({'a': y, 'b': x}))


def test_bottleneck_pooled_is_mean_of_present_cls_outputs():
    fusion = make('bottleneck', DIMS3).eval()
    tokens, masks = tokens_and_masks(DIMS3)
    out = fusion(tokens, masks)
    starts = [0, 1 + LENS['text'], 2 + LENS['text'] + LENS['image']]
    cls = out[:, starts]  # (B, M, OUT), zero for an absent modality
    present = torch.stack([masks[m].any(1) for m in DIMS3], dim=1)
    assert not present[3, 1] and (cls[3, 1] == 0).all()
    expected = cls.sum(1) / present.sum(1, keepdim=True)
    torch.testing.assert_close(fusion.forward_pooled(tokens, masks), expected)


def test_bottleneck_streams_meet_only_through_bottlenecks():
    tokens, _ = tokens_and_masks(DIMS2)
    changed = dict(tokens, text=tokens['text'] + 1.0)
    image = slice(1 + LENS['text'], None)
    # Late fusion (fusion_layer == num_layers): independent streams, no bottleneck tokens.
    late = make('bottleneck', DIMS2, fusion_layer=3).eval()
    assert late.bottlenecks is None
    torch.testing.assert_close(late(changed)[:, image], late(tokens)[:, image])
    assert n_params(late) == n_params(make('bottleneck', DIMS2)) - 2 * E
    # With bottlenecks from layer 1 (or 0) on, the text reaches the image stream.
    for fusion_layer in (0, 1):
        mid = make('bottleneck', DIMS2, fusion_layer=fusion_layer).eval()
        assert not torch.allclose(mid(changed)[:, image], mid(tokens)[:, image])


def test_bottleneck_all_modalities_missing_gives_zeros():
    fusion = make('bottleneck', DIMS2).eval()
    tokens, masks = tokens_and_masks(DIMS2)
    masks = {m: mk.clone() for m, mk in masks.items()}
    for mk in masks.values():
        mk[2] = False
    assert (fusion(tokens, masks)[2] == 0).all()
    assert (fusion.forward_pooled(tokens, masks)[2] == 0).all()


@pytest.mark.parametrize('variant', ['perceiver', 'qformer', 'qformer_text'])
def test_latents_ignore_token_order_within_a_modality(variant):
    """No position embeddings: permuting the real tokens of a modality (with
    their masks) gives the same latents."""
    fusion = make(variant, DIMS3).eval()
    tokens, masks = tokens_and_masks(DIMS3)
    perm = torch.randperm(LENS['image'], generator=torch.Generator().manual_seed(3))
    permuted = dict(tokens, image=tokens['image'][:, perm])
    permuted_masks = dict(masks, image=masks['image'][:, perm])
    torch.testing.assert_close(fusion(permuted, permuted_masks), fusion(tokens, masks))


@pytest.mark.parametrize('variant', ['perceiver', 'qformer'])
def test_latents_without_any_context_skip_the_cross_attention(variant):
    """A sample with every modality masked gets exactly the latents/queries run
    through the network with the cross-attention outputs set to zero."""
    fusion = make(variant, DIMS2).eval()
    tokens, masks = tokens_and_masks(DIMS2)
    masks = {m: torch.zeros_like(mk) for m, mk in masks.items()}
    out = fusion(tokens, masks)
    if variant == 'perceiver':
        x = fusion.latents[0]
        for _ in range(fusion.num_blocks):
            x = fusion.cross_ffn(x)
            for layer in fusion.self_attn_layers:
                x = layer(x.unsqueeze(0))[0]
    else:
        x = fusion.queries
        for layer in fusion.layers:
            h = layer.norm_self(x)
            x = layer.ffn(x + layer.self_attn(h, h, h, need_weights=False)[0])
        x = x[0]
    expected = fusion.out_proj(fusion.norm(x))
    for b in range(B):
        torch.testing.assert_close(out[b], expected)
    torch.testing.assert_close(fusion.forward_pooled(tokens, masks), out.mean(1))


def test_perceiver_shares_weights_across_blocks():
    one, three = make('perceiver', DIMS2, num_blocks=1), make('perceiver', DIMS2, num_blocks=3)
    assert n_params(one) == n_params(three)
    three.load_state_dict(one.state_dict())
    tokens, masks = tokens_and_masks(DIMS2)
    assert not torch.allclose(one.eval()(tokens, masks), three.eval()(tokens, masks))


def test_perceiver_without_self_attention_layers():
    fusion = make('perceiver', DIMS3, num_self_attn_layers=0)
    assert len(fusion.self_attn_layers) == 0
    assert n_params(fusion) == expected_params('perceiver', DIMS3, E, OUT) - layer_params(E, F)
    tokens, _ = tokens_and_masks(DIMS3)
    assert_every_parameter_gets_a_gradient(fusion, fusion(tokens))


def test_qformer_cross_attention_every_freq_layers():
    fusion = make('qformer', DIMS2, num_layers=5, cross_attention_freq=2)
    assert [layer.cross_attn is not None for layer in fusion.layers] == [
        True, False, True, False, True]
    every = make('qformer', DIMS2, num_layers=5, cross_attention_freq=1)
    assert n_params(every) - n_params(fusion) == 2 * (4 * E * E + 8 * E)


def test_qformer_text_joins_self_attention_not_the_context():
    fusion = make('qformer_text', DIMS3).eval()
    assert fusion.context_modalities == ['image', 'audio']
    assert fusion.type_embed.shape == (2, E)
    assert fusion.layers[-1].text_ffn is None and fusion.layers[0].text_ffn is not None
    tokens, masks = tokens_and_masks(DIMS3)
    out = fusion(tokens, masks)
    assert out.shape == (B, NUM_LATENTS, OUT)  # only the query positions
    changed = dict(tokens, text=tokens['text'] + 1.0)
    assert not torch.allclose(fusion(changed, masks), out)
    # The text carries information into the queries only through self-attention:
    # zeroing every self-attention output projection cuts it off.
    for layer in fusion.layers:
        torch.nn.init.zeros_(layer.self_attn.out_proj.weight)
    torch.testing.assert_close(fusion(changed, masks), fusion(tokens, masks))


# ---------------------------------------------------------------------- errors


@pytest.mark.parametrize('variant, kw, match', [
    ('single', dict(in_dims={'text': 7}), 'SingleStreamFusion fuses at least 2 modalities'),
    ('bottleneck', dict(in_dims={'text': 7}), 'BottleneckFusion fuses at least 2 modalities'),
    ('perceiver', dict(in_dims={'text': 7}), 'PerceiverFusion fuses at least 2 modalities'),
    ('qformer', dict(in_dims={'text': 7}), 'QFormerFusion fuses at least 2 modalities'),
    ('single', dict(num_heads=3), 'SingleStreamFusion: embed_dim=8 must be divisible by '
                                  'num_heads=3'),
    ('single', dict(dropout=1.0), r'SingleStreamFusion: dropout must be in \[0, 1\)'),
    ('single', dict(num_layers=0), 'SingleStreamFusion: num_layers must be >= 1, got 0'),
    ('single', dict(max_positions=0), r"SingleStreamFusion: max_positions\['text'\] must be"),
    ('single', dict(max_positions=dict(text=5)), 'max_positions must be an int or a dict'),
    ('bottleneck', dict(fusion_layer=4),
     r'BottleneckFusion: fusion_layer must be in \[0, num_layers=3\], got 4'),
    ('bottleneck', dict(num_bottlenecks=0), 'BottleneckFusion: num_bottlenecks must be >= 1'),
    ('perceiver', dict(num_latents=0), 'PerceiverFusion: num_latents must be >= 1'),
    ('perceiver', dict(num_blocks=0), 'PerceiverFusion: num_blocks must be >= 1'),
    ('perceiver', dict(num_self_attn_layers=-1),
     'PerceiverFusion: num_self_attn_layers must be >= 0'),
    ('perceiver', dict(cross_attn_heads=3), 'divisible by cross_attn_heads=3'),
    ('perceiver', dict(ffn_dim=0), 'PerceiverFusion: ffn_dim must be >= 1'),
    ('qformer', dict(cross_attention_freq=0), 'QFormerFusion: cross_attention_freq must be'),
    ('qformer', dict(num_queries=0), 'QFormerFusion: num_queries must be >= 1'),
    ('qformer', dict(text_modality='audio'),
     r"QFormerFusion: text_modality='audio' is not in in_dims \['image', 'text'\]"),
])
def test_bad_arguments(variant, kw, match):
    with pytest.raises(ValueError, match=match):
        make(variant, DIMS2, **kw)
