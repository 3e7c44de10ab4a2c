"""Tests of the spatial fusions: SpatialSum/Concat/Gated/FiLM/CrossAttentionFusion.

The same contract as the vector and token fusions (built from a config,
documented parameter count, every parameter gets a gradient), for the spatial
interface: ``{m: [(B, C_m, H_l, W_l)]}`` (+ ``cond``) -> ``[(B, out_channels, H_l, W_l)]``.
"""
import pytest
import torch
import torch.nn.functional as F

import mmfusion.models  # noqa: F401  (registers the modules)
from mmfusion.errors import ConfigError
from mmfusion.models.encoders.base import ModalityFeatures
from mmfusion.models.fusion import SPATIAL_FUSIONS, BaseSpatialFusion
from mmfusion.models.fusion import spatial as spatial_lib
from mmfusion.registry import MODELS

B = 2
OUT = 8
TEXT_DIM = 5
TEXT_LEN = 4
CHANNELS = dict(image=6, depth=4)
SIZES = [(8, 8), (4, 4), (2, 2)]
TEXT_FUSIONS = ('SpatialFiLMFusion', 'SpatialCrossAttentionFusion')


def random_maps(channels: dict = CHANNELS, sizes=SIZES, batch: int = B, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {m: [torch.randn(batch, c, h, w, generator=g) for h, w in sizes]
            for m, c in channels.items()}


def text_cond(batch: int = B, real=(4, 2), dim: int = TEXT_DIM, seed: int = 1) -> dict:
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randn(batch, TEXT_LEN, dim, generator=g)
    mask = torch.arange(TEXT_LEN).unsqueeze(0) < torch.tensor(real).unsqueeze(1)
    return dict(text=ModalityFeatures(pooled=tokens.mean(dim=1), tokens=tokens, mask=mask))


def build(cfg: dict):
    module = MODELS.build(dict(cfg))
    assert type(module).__name__ == cfg['type']
    assert module.out_channels == cfg['out_channels']
    assert module.input_form == 'spatial'
    return module


def run(module, maps=None, cond=None):
    maps = random_maps() if maps is None else maps
    if type(module).__name__ in TEXT_FUSIONS and cond is None:
        cond = text_cond(dim=module.cond_dim)
    return module(maps, cond)


def expected_params(cfg: dict) -> int:
    """The "Parameter count:" formula of each module's docstring."""
    chans, out, kind = cfg['in_channels'], cfg['out_channels'], cfg['type']
    levels = cfg.get('num_levels') or 1
    m = len(chans)
    proj = sum((c + 1) * out for c in chans.values())
    if kind == 'SpatialSumFusion':
        per_level = proj
    elif kind == 'SpatialConcatFusion':
        per_level = (sum(chans.values()) + 1) * out
    elif kind == 'SpatialGatedFusion':
        per_level = proj + (9 * m * out + 1) * m
    elif kind == 'SpatialFiLMFusion':
        per_level = proj + (cfg['cond_dim'] + 1) * 2 * out
    elif kind == 'SpatialCrossAttentionFusion':
        d = cfg['cond_dim']
        per_level = proj + 2 * out * (out + 1) + 2 * out * (d + 1) + 2 * out
    else:
        raise AssertionError(kind)
    return levels * per_level


CFGS = [
    dict(type='SpatialSumFusion', in_channels=CHANNELS, out_channels=OUT),
    dict(type='SpatialSumFusion', in_channels=dict(image=6), out_channels=OUT, num_levels=3),
    dict(type='SpatialConcatFusion', in_channels=CHANNELS, out_channels=OUT),
    dict(type='SpatialConcatFusion', in_channels=CHANNELS, out_channels=OUT, num_levels=3),
    dict(type='SpatialGatedFusion', in_channels=CHANNELS, out_channels=OUT),
    dict(type='SpatialGatedFusion', in_channels=dict(image=6, depth=4, thermal=3),
         out_channels=OUT, num_levels=3),
    dict(type='SpatialFiLMFusion', in_channels=CHANNELS, out_channels=OUT, cond_dim=TEXT_DIM),
    dict(type='SpatialFiLMFusion', in_channels=dict(image=6), out_channels=OUT,
         cond_dim=TEXT_DIM, num_levels=3),
    dict(type='SpatialCrossAttentionFusion', in_channels=CHANNELS, out_channels=OUT,
         cond_dim=TEXT_DIM, num_heads=2),
    dict(type='SpatialCrossAttentionFusion', in_channels=dict(image=6), out_channels=OUT,
         cond_dim=OUT, num_heads=4, num_levels=3),
]


def cfg_id(cfg):
    return f"{cfg['type']}-{len(cfg['in_channels'])}m-L{cfg.get('num_levels')}"


def with_channels(cfg: dict) -> dict:
    return {m: c for m, c in list(CHANNELS.items()) + [('thermal', 3)]
            if m in cfg['in_channels']}


def test_spatial_fusion_list_matches_the_registered_subclasses():
    subclasses = {cls.__name__ for cls in vars(spatial_lib).values()
                  if isinstance(cls, type) and issubclass(cls, BaseSpatialFusion)
                  and not cls.__name__.startswith('_') and cls is not BaseSpatialFusion}
    assert set(SPATIAL_FUSIONS) == subclasses
    for name in SPATIAL_FUSIONS:
        assert MODELS.get(name) is getattr(spatial_lib, name)


@pytest.mark.parametrize('cfg', CFGS, ids=cfg_id)
def test_output_shapes_and_parameter_count(cfg):
    torch.manual_seed(0)
    module = build(cfg)
    out = run(module, random_maps(with_channels(cfg)))
    assert [tuple(o.shape) for o in out] == [(B, OUT, h, w) for h, w in SIZES]
    assert all(torch.isfinite(o).all() for o in out)
    assert sum(p.numel() for p in module.parameters()) == expected_params(cfg)


@pytest.mark.parametrize('cfg', CFGS, ids=cfg_id)
def test_every_parameter_gets_a_gradient(cfg):
    torch.manual_seed(0)
    module = build(cfg)
    out = run(module, random_maps(with_channels(cfg)))
    g = torch.Generator().manual_seed(1)
    loss = sum((o * torch.randn(o.shape, generator=g)).sum() for o in out)
    loss.backward()
    for name, p in module.named_parameters():
        assert p.grad is not None, f'{name} received no gradient'
        assert torch.isfinite(p.grad).all(), f'{name} has a non-finite gradient'
        assert p.grad.abs().sum() > 0, f'{name} has an all-zero gradient'


@pytest.mark.parametrize('cfg', CFGS, ids=cfg_id)
def test_a_missing_modality_is_a_config_error_naming_it(cfg):
    module = build(cfg)
    maps = random_maps(with_channels(cfg))
    missing = list(cfg['in_channels'])[-1]
    del maps[missing]
    maps['audio'] = maps.get('image', [torch.zeros(B, 1, 2, 2)])
    with pytest.raises(ConfigError, match=f"missing: \\['{missing}'\\]"):
        run(module, maps)


@pytest.mark.parametrize('name', TEXT_FUSIONS)
@pytest.mark.parametrize('cond', [None, {}, 'other'])
def test_a_missing_condition_is_a_config_error_naming_cond_key(name, cond):
    module = build(dict(type=name, in_channels=CHANNELS, out_channels=OUT, cond_dim=TEXT_DIM))
    if cond == 'other':
        cond = dict(audio=text_cond()['text'])
    with pytest.raises(ConfigError, match="conditioned on 'text'"):
        module(random_maps(), cond)


@pytest.mark.parametrize('name', TEXT_FUSIONS)
def test_cond_key_selects_the_conditioning_modality(name):
    torch.manual_seed(0)
    module = build(dict(type=name, in_channels=CHANNELS, out_channels=OUT, cond_dim=TEXT_DIM,
                        cond_key='question'))
    out = module(random_maps(), dict(question=text_cond()['text']))
    assert out[0].shape == (B, OUT, 8, 8)
    with pytest.raises(ConfigError, match='cond_dim=5'):
        feats = text_cond()['text']
        module(random_maps(), dict(question=ModalityFeatures(pooled=feats.pooled[:, :3],
                                                             tokens=feats.tokens[..., :3])))


def test_sum_fusion_adds_the_projections():
    torch.manual_seed(0)
    module = build(dict(type='SpatialSumFusion', in_channels=CHANNELS, out_channels=OUT))
    maps = random_maps()
    out = module(maps)
    for level in range(3):
        expected = sum(module.proj[0][m](maps[m][level]) for m in CHANNELS)
        torch.testing.assert_close(out[level], expected)


def test_concat_fusion_is_one_conv_over_the_concatenation():
    torch.manual_seed(0)
    module = build(dict(type='SpatialConcatFusion', in_channels=CHANNELS, out_channels=OUT))
    maps = random_maps()
    conv = module.proj[0]
    out = module(maps)
    expected = F.conv2d(torch.cat([maps['image'][1], maps['depth'][1]], dim=1),
                        conv.weight, conv.bias)
    torch.testing.assert_close(out[1], expected)


def test_gated_fusion_weighs_each_projection_by_its_pixel_gate():
    torch.manual_seed(0)
    module = build(dict(type='SpatialGatedFusion', in_channels=CHANNELS, out_channels=OUT))
    maps = random_maps()
    out = module(maps)
    gates = module.last_gates
    assert gates.shape == (B, 2, 8, 8)
    assert ((gates > 0) & (gates < 1)).all()
    assert gates.std() > 0  # per pixel, not constant
    proj = [module.proj[0][m](maps[m][0]) for m in CHANNELS]
    torch.testing.assert_close(out[0], gates[:, :1] * proj[0] + gates[:, 1:] * proj[1])
    # Closing the depth gate leaves the image projection alone.
    with torch.no_grad():
        module.gate[0].weight.zero_()
        module.gate[0].bias.copy_(torch.tensor([30.0, -30.0]))
    torch.testing.assert_close(module(maps)[0], proj[0], atol=1e-5, rtol=1e-5)


def test_film_fusion_modulates_with_the_text():
    torch.manual_seed(0)
    module = build(dict(type='SpatialFiLMFusion', in_channels=CHANNELS, out_channels=OUT,
                        cond_dim=TEXT_DIM))
    maps = random_maps()
    cond = text_cond()
    out = module(maps, cond)
    visual = sum(module.proj[0][m](maps[m][2]) for m in CHANNELS)
    dgamma, beta = module.film[0](cond['text'].pooled).chunk(2, dim=-1)
    expected = F.relu((1 + dgamma[:, :, None, None]) * visual + beta[:, :, None, None])
    torch.testing.assert_close(out[2], expected)
    # Another text gives another output; zero modulation gives ReLU(visual).
    other = dict(text=ModalityFeatures(pooled=cond['text'].pooled + 1.0))
    assert not torch.allclose(module(maps, other)[2], out[2])
    with torch.no_grad():
        module.film[0].weight.zero_()
        module.film[0].bias.zero_()
    torch.testing.assert_close(module(maps, cond)[2], F.relu(visual))


def test_cross_attention_ignores_padding_tokens_and_empty_texts():
    torch.manual_seed(0)
    module = build(dict(type='SpatialCrossAttentionFusion', in_channels=CHANNELS,
                        out_channels=OUT, cond_dim=TEXT_DIM, num_heads=2))
    maps = random_maps()
    cond = text_cond(real=(4, 2))
    out = module(maps, cond)
    # Changing the padding tokens of sample 1 changes nothing.
    tokens = cond['text'].tokens.clone()
    tokens[1, 2:] = 100.0
    padded = dict(text=ModalityFeatures(pooled=cond['text'].pooled, tokens=tokens,
                                        mask=cond['text'].mask))
    for a, b in zip(out, module(maps, padded)):
        torch.testing.assert_close(a, b)
    # Changing a real token does.
    tokens[1, 0] = 100.0
    assert not torch.allclose(out[0][1], module(maps, padded)[0][1])
    # A sample without real tokens gets LayerNorm(visual) and no NaN.
    empty = dict(text=ModalityFeatures(pooled=cond['text'].pooled, tokens=cond['text'].tokens,
                                       mask=torch.tensor([[True] * 4, [False] * 4])))
    out_empty = module(maps, empty)
    visual = sum(module.proj[0][m](maps[m][0]) for m in CHANNELS)
    expected = module.norm[0](visual.flatten(2).transpose(1, 2)).transpose(1, 2)
    torch.testing.assert_close(out_empty[0][1], expected[1].reshape(OUT, 8, 8))
    torch.testing.assert_close(out_empty[0][0], out[0][0])


def test_cross_attention_uses_the_pooled_vector_when_there_are_no_tokens():
    torch.manual_seed(0)
    module = build(dict(type='SpatialCrossAttentionFusion', in_channels=CHANNELS,
                        out_channels=OUT, cond_dim=TEXT_DIM, num_heads=2))
    pooled = text_cond()['text'].pooled
    as_pooled = module(random_maps(), dict(text=ModalityFeatures(pooled=pooled)))
    as_token = module(random_maps(), dict(text=ModalityFeatures(pooled=pooled,
                                                                tokens=pooled[:, None])))
    for a, b in zip(as_pooled, as_token):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize('cfg', [CFGS[0], CFGS[2], CFGS[4], CFGS[6], CFGS[8]], ids=cfg_id)
def test_num_levels_gives_each_level_its_own_weights(cfg):
    """The same map on every level: shared weights give the same output per
    level, per-level weights (num_levels=3) different ones."""
    one_level = random_maps(sizes=[(4, 4)])
    maps = {m: levels * 3 for m, levels in one_level.items()}
    torch.manual_seed(0)
    shared = run(build(cfg), maps)
    torch.testing.assert_close(shared[0], shared[2])
    torch.manual_seed(0)
    separate = run(build(dict(cfg, num_levels=3)), maps)
    assert not torch.allclose(separate[0], separate[2])


@pytest.mark.parametrize('cfg, match', [
    (dict(type='SpatialSumFusion', in_channels=[6, 4], out_channels=OUT), 'in_channels must'),
    (dict(type='SpatialSumFusion', in_channels={}, out_channels=OUT), 'in_channels must'),
    (dict(type='SpatialSumFusion', in_channels=dict(image=0), out_channels=OUT),
     r"in_channels\['image'\]"),
    (dict(type='SpatialConcatFusion', in_channels=CHANNELS, out_channels=0), 'out_channels'),
    (dict(type='SpatialConcatFusion', in_channels=CHANNELS, out_channels=2.5), 'out_channels'),
    (dict(type='SpatialSumFusion', in_channels=CHANNELS, out_channels=OUT, num_levels=0),
     'num_levels'),
    (dict(type='SpatialGatedFusion', in_channels=dict(image=6), out_channels=OUT),
     'at least 2'),
    (dict(type='SpatialFiLMFusion', in_channels=CHANNELS, out_channels=OUT, cond_dim=0),
     'cond_dim'),
    (dict(type='SpatialFiLMFusion', in_channels=dict(image=6, text=5), out_channels=OUT,
          cond_dim=5), 'cond_key'),
    (dict(type='SpatialCrossAttentionFusion', in_channels=CHANNELS, out_channels=OUT,
          cond_dim=5, num_heads=3), 'num_heads=3 must divide out_channels=8'),
    (dict(type='SpatialCrossAttentionFusion', in_channels=CHANNELS, out_channels=OUT,
          cond_dim=5, dropout=1.0), 'dropout'),
])
def test_bad_arguments_are_config_errors(cfg, match):
    with pytest.raises(ConfigError, match=match):
        MODELS.build(cfg)


def test_mismatched_maps_are_clear_errors():
    module = build(dict(type='SpatialConcatFusion', in_channels=CHANNELS, out_channels=OUT,
                        num_levels=3))
    maps = random_maps()
    with pytest.raises(ConfigError, match=r"in_channels\['depth'\]=4 but level 1"):
        module(dict(maps, depth=[maps['depth'][0], torch.zeros(B, 5, 4, 4), maps['depth'][2]]))
    with pytest.raises(ValueError, match='batch and spatial sizes must agree'):
        module(dict(maps, depth=[maps['depth'][0], torch.zeros(B, 4, 3, 4), maps['depth'][2]]))
    with pytest.raises(ValueError, match='the depth pyramid has 2 levels'):
        module(dict(maps, depth=maps['depth'][:2]))
    with pytest.raises(ConfigError, match='expected 3 pyramid levels'):
        module({m: levels[:2] for m, levels in maps.items()})
