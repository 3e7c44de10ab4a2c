"""Tests of the FPN neck (torchvision's FeaturePyramidNetwork + extra levels)."""
import pytest
import torch

import mmfusion.models  # noqa: F401  (registers the modules)
from mmfusion.errors import ConfigError
from mmfusion.registry import MODELS

IN_CHANNELS = [4, 8, 16]
SIZES = [(16, 16), (8, 8), (4, 4)]


def pyramid(batch: int = 2, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, c, h, w, generator=g) for c, (h, w) in zip(IN_CHANNELS, SIZES)]


@pytest.mark.parametrize('extra, mode, sizes', [
    (0, 'maxpool', SIZES),
    (1, 'maxpool', SIZES + [(2, 2)]),
    (2, 'conv', SIZES + [(2, 2), (1, 1)]),
])
def test_output_shapes(extra, mode, sizes):
    neck = MODELS.build(dict(type='FPN', in_channels=IN_CHANNELS, out_channels=6,
                             num_extra_levels=extra, extra_mode=mode))
    out = neck(pyramid())
    assert neck.out_channels == 6 and neck.num_outs == len(sizes)
    assert isinstance(out, list)
    assert [tuple(o.shape) for o in out] == [(2, 6, h, w) for h, w in sizes]


def test_maxpool_level_subsamples_the_last_output_and_conv_levels_learn():
    torch.manual_seed(0)
    neck = MODELS.build(dict(type='FPN', in_channels=IN_CHANNELS, out_channels=6,
                             num_extra_levels=1))
    out = neck(pyramid())
    torch.testing.assert_close(out[3], out[2][:, :, ::2, ::2])

    neck = MODELS.build(dict(type='FPN', in_channels=IN_CHANNELS, out_channels=6,
                             num_extra_levels=2, extra_mode='conv'))
    out = neck(pyramid())
    g = torch.Generator().manual_seed(1)
    sum((o * torch.randn(o.shape, generator=g)).sum() for o in out).backward()
    for name, p in neck.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_top_down_pathway_carries_coarse_information_to_fine_levels():
    torch.manual_seed(0)
    neck = MODELS.build(dict(type='FPN', in_channels=IN_CHANNELS, out_channels=6))
    maps = pyramid()
    changed = [m.clone() for m in maps]
    changed[2] += 1.0
    out, out_changed = neck(maps), neck(changed)
    assert not torch.allclose(out[0], out_changed[0])


@pytest.mark.parametrize('cfg, match', [
    (dict(in_channels=[], out_channels=6), 'in_channels'),
    (dict(in_channels=8, out_channels=6), 'in_channels'),
    (dict(in_channels=[4, 0], out_channels=6), 'in_channels'),
    (dict(in_channels=IN_CHANNELS, out_channels=0), 'out_channels'),
    (dict(in_channels=IN_CHANNELS, out_channels=6, num_extra_levels=-1), 'num_extra_levels'),
    (dict(in_channels=IN_CHANNELS, out_channels=6, num_extra_levels=1, extra_mode='avg'),
     'extra_mode'),
])
def test_bad_arguments_are_config_errors(cfg, match):
    with pytest.raises(ConfigError, match=match):
        MODELS.build(dict(type='FPN', **cfg))


def test_maps_that_disagree_with_in_channels_are_config_errors():
    neck = MODELS.build(dict(type='FPN', in_channels=IN_CHANNELS, out_channels=6))
    maps = pyramid()
    with pytest.raises(ConfigError, match='lists 3 levels'):
        neck(maps[:2])
    with pytest.raises(ConfigError, match=r'in_channels\[1\]=8 but map 1'):
        neck([maps[0], torch.zeros(2, 5, 8, 8), maps[2]])
