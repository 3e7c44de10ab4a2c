"""Feature Pyramid Network neck over torchvision's implementation."""
from collections import OrderedDict
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import nn
from torchvision.ops import FeaturePyramidNetwork
from torchvision.ops.feature_pyramid_network import ExtraFPNBlock

from mmfusion.errors import ConfigError
from mmfusion.registry import MODELS


class ExtraLevels(ExtraFPNBlock):
    """Coarser levels appended on top of the last FPN output.

    ``mode='maxpool'`` subsamples by 2 (``max_pool2d`` with kernel 1, exactly
    what torchvision's ``LastLevelMaxPool`` does for one level, repeated);
    ``mode='conv'`` applies a 3x3 stride-2 conv, with a ReLU before every conv
    but the first, as the P6/P7 levels of RetinaNet and FCOS (computed from
    the P5 output, FCOS's variant; torchvision's ``LastLevelP6P7`` does the
    same for exactly two levels).
    """

    def __init__(self, channels: int, num_levels: int, mode: str) -> None:
        super().__init__()
        self.num_levels = num_levels
        self.mode = mode
        self.convs = nn.ModuleList()
        if mode == 'conv':
            for _ in range(num_levels):
                conv = nn.Conv2d(channels, channels, kernel_size=3, stride=2, padding=1)
                nn.init.kaiming_uniform_(conv.weight, a=1)  # as torchvision's FPN convs
                nn.init.constant_(conv.bias, 0)
                self.convs.append(conv)

    def forward(self, results: List[torch.Tensor], x: List[torch.Tensor],
                names: List[str]) -> Tuple[List[torch.Tensor], List[str]]:
        for k in range(self.num_levels):
            last = results[-1]
            if self.mode == 'maxpool':
                results.append(F.max_pool2d(last, kernel_size=1, stride=2, padding=0))
            else:
                results.append(self.convs[k](last if k == 0 else F.relu(last)))
            names.append(f'extra{k}')
        return results, names


@MODELS.register_module()
class FPN(BaseModule):
    """Feature Pyramid Network (Lin et al., "Feature Pyramid Networks for
    Object Detection", CVPR 2017), computed by
    ``torchvision.ops.FeaturePyramidNetwork``.

    A 1x1 lateral conv per input level, the top-down pathway (nearest
    upsampling and addition) and a 3x3 output conv per level, all with
    ``out_channels`` channels; optionally ``num_extra_levels`` coarser levels
    (each stride 2 more) appended by :class:`ExtraLevels`.

    Args:
        in_channels: channels of each input map, finest first, e.g. a timm
            encoder's ``map_channels``.
        out_channels: channels of every output map.
        num_extra_levels: coarser levels added on top (0: none).
        extra_mode: ``'maxpool'`` (subsampling, no parameters) or ``'conv'``
            (3x3 stride-2 convs).

    Input: [Tensor (B, in_channels[i], H_i, W_i)], finest first.
    Output: [Tensor (B, out_channels, H_l, W_l)], ``len(in_channels) +
    num_extra_levels`` maps, finest first (``num_outs``).
    """

    def __init__(self, in_channels: Sequence[int], out_channels: int,
                 num_extra_levels: int = 0, extra_mode: str = 'maxpool',
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if (isinstance(in_channels, (str, int)) or not in_channels
                or not all(isinstance(c, int) and not isinstance(c, bool) and c >= 1
                           for c in in_channels)):
            raise ConfigError(f'FPN: in_channels must be a non-empty list of channel counts '
                              f'(integers >= 1), finest level first, got {in_channels!r}')
        for arg, value, minimum in (('out_channels', out_channels, 1),
                                    ('num_extra_levels', num_extra_levels, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ConfigError(f'FPN: {arg} must be an integer >= {minimum}, got {value!r}')
        if extra_mode not in ('maxpool', 'conv'):
            raise ConfigError(f"FPN: extra_mode must be 'maxpool' or 'conv', got {extra_mode!r}")
        self.in_channels = list(in_channels)
        self.out_channels = out_channels
        self.num_outs = len(self.in_channels) + num_extra_levels
        extra = (ExtraLevels(out_channels, num_extra_levels, extra_mode)
                 if num_extra_levels else None)
        self.fpn = FeaturePyramidNetwork(self.in_channels, out_channels, extra_blocks=extra)

    def forward(self, maps: Sequence[torch.Tensor]) -> List[torch.Tensor]:
        if len(maps) != len(self.in_channels):
            raise ConfigError(f'FPN: in_channels lists {len(self.in_channels)} levels '
                              f'{self.in_channels} but got {len(maps)} maps')
        for i, (x, channels) in enumerate(zip(maps, self.in_channels)):
            if x.ndim != 4 or x.shape[1] != channels:
                raise ConfigError(f'FPN: in_channels[{i}]={channels} but map {i} has shape '
                                  f'{tuple(x.shape)}; expected (B, {channels}, H, W)')
        out = self.fpn(OrderedDict((str(i), x) for i, x in enumerate(maps)))
        return list(out.values())
