"""Convolution blocks of the dense (detection, segmentation) heads."""
import math
from functools import partial

from torch import nn
from torchvision.ops import Conv2dNormActivation

from mmfusion.errors import ConfigError


def conv_gn_relu(in_channels: int, out_channels: int, groups: int) -> nn.Module:
    """3x3 conv (no bias), GroupNorm with ``groups`` groups, ReLU:
    (B, in_channels, H, W) -> (B, out_channels, H, W)."""
    return Conv2dNormActivation(in_channels, out_channels, kernel_size=3,
                                norm_layer=partial(nn.GroupNorm, groups))


def norm_groups_for(owner: str, channels: int, groups: int | None) -> int:
    """GroupNorm groups: ``groups`` if it divides ``channels``; ``None``: gcd(32, channels).

    Raises a ConfigError naming ``owner`` for any other ``groups``.
    """
    if groups is None:
        return math.gcd(32, channels)
    if not isinstance(groups, int) or groups < 1 or channels % groups:
        raise ConfigError(f'{owner}: norm_groups={groups!r} must be an integer >= 1 dividing '
                          f'the conv channels ({channels}); leave it None for gcd(32, channels)')
    return groups
