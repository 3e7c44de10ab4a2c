"""Spatial fusion of feature pyramids, for detection and segmentation.

Each module merges, level by level, the feature pyramids of image-like
modalities (an RGB image, a depth or thermal map, each after its own FPN
neck) and optionally conditions them on a non-spatial modality (text):

* extra image-like modality: :class:`SpatialSumFusion`,
  :class:`SpatialConcatFusion`, :class:`SpatialGatedFusion`;
* text conditioning of a visual pyramid: :class:`SpatialFiLMFusion`,
  :class:`SpatialCrossAttentionFusion`.

They share the interface of :class:`BaseSpatialFusion`.
"""
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import nn

from mmfusion.errors import ConfigError
from mmfusion.registry import MODELS

from ..layers import check_int, masked_cross_attention
from .base import ModalityFeatures


def conv1x1(in_channels: int, out_channels: int) -> nn.Conv2d:
    """A 1x1 conv with bias: (B, in_channels, H, W) -> (B, out_channels, H, W)."""
    return nn.Conv2d(in_channels, out_channels, kernel_size=1)


class BaseSpatialFusion(BaseModule):
    """Fuses per-modality feature pyramids into one pyramid, level by level.

    Args:
        in_channels: image-like modality -> channels C_m of its maps (the same
            on every level, as after an FPN neck), e.g. ``dict(image=64, depth=64)``.
        out_channels: channels of the fused maps.
        num_levels: ``None`` shares one set of weights between all levels (any
            number of levels is accepted); an int gives every level its own
            weights, and the pyramids must then have exactly that many levels.

    ``forward(maps, cond=None)``:
        maps: modality -> [Tensor (B, C_m, H_l, W_l) for each level l]. Every
            modality of ``in_channels`` must be present with the same number of
            levels and the same (B, H_l, W_l) per level. Modalities not in
            ``in_channels`` are ignored.
        cond: modality -> :class:`ModalityFeatures` of non-spatial modalities
            (text); used by the text-conditioned subclasses only.
        returns: [Tensor (B, out_channels, H_l, W_l) for each level l].

    Missing modality: a modality of ``in_channels`` absent from ``maps`` is a
    :class:`~mmfusion.errors.ConfigError` naming the expected and the given
    modalities; nothing is imputed (a dense model is built for a fixed set of
    modalities, so an absent one means the pipeline and the config disagree).
    """
    input_form = 'spatial'
    min_modalities = 1

    def __init__(self, in_channels: Dict[str, int], out_channels: int,
                 num_levels: Optional[int] = None, init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        owner = type(self).__name__
        if not isinstance(in_channels, dict) or not in_channels:
            raise ConfigError(f'{owner}: in_channels must be a non-empty dict of image-like '
                              f'modality -> channels, e.g. dict(image=64, depth=64), '
                              f'got {in_channels!r}')
        for name, channels in in_channels.items():
            check_int(owner, f'in_channels[{name!r}]', channels)
        if len(in_channels) < self.min_modalities:
            raise ConfigError(f'{owner} fuses at least {self.min_modalities} image-like '
                              f'modalities, got in_channels={in_channels!r}; use '
                              f'SpatialSumFusion for a single one')
        self.in_channels = dict(in_channels)
        self.modalities = list(in_channels)
        self.out_channels = check_int(owner, 'out_channels', out_channels)
        self.num_levels = (None if num_levels is None
                           else check_int(owner, 'num_levels', num_levels))

    def per_level(self, make) -> nn.ModuleList:
        """``make()`` once per level (``num_levels`` set) or once in all."""
        return nn.ModuleList([make() for _ in range(self.num_levels or 1)])

    def weight_index(self, level: int) -> int:
        """Index into a :meth:`per_level` list of the weights of ``level``."""
        return 0 if self.num_levels is None else level

    def check_maps(self, maps: Dict[str, List[torch.Tensor]]) -> int:
        """Raise a clear error for an absent modality or a mismatched map;
        return the number of levels."""
        owner = type(self).__name__
        if not isinstance(maps, dict):
            raise TypeError(f'{owner}: maps must be a dict modality -> list of (B, C, H, W) '
                            f'maps, got {type(maps).__name__}')
        missing = [m for m in self.modalities if m not in maps]
        if missing:
            raise ConfigError(f'{owner} fuses the maps of {self.modalities} (in_channels) but '
                              f'got maps of {sorted(maps)} only (missing: {missing}); make the '
                              f"model's image-like encoders and the fusion's in_channels agree")
        ref = self.modalities[0]
        num_levels = len(maps[ref])
        if num_levels == 0 or (self.num_levels is not None and num_levels != self.num_levels):
            expected = self.num_levels or '>= 1'
            raise ConfigError(f'{owner}: expected {expected} pyramid levels (num_levels), '
                              f'the {ref} maps have {num_levels}')
        for name in self.modalities:
            levels = maps[name]
            if len(levels) != num_levels:
                raise ValueError(f'{owner}: the {name} pyramid has {len(levels)} levels, the '
                                 f'{ref} pyramid {num_levels}; every modality needs the same')
            for level, (x, x_ref) in enumerate(zip(levels, maps[ref])):
                if x.ndim != 4 or x.shape[1] != self.in_channels[name]:
                    raise ConfigError(f'{owner}: in_channels[{name!r}]={self.in_channels[name]} '
                                      f'but level {level} of the {name} maps has shape '
                                      f'{tuple(x.shape)}; expected (B, C, H, W) with '
                                      f'C={self.in_channels[name]}')
                if (x.shape[0], *x.shape[2:]) != (x_ref.shape[0], *x_ref.shape[2:]):
                    raise ValueError(f'{owner}: level {level} of the {name} maps has shape '
                                     f'{tuple(x.shape)} and of the {ref} maps '
                                     f'{tuple(x_ref.shape)}; batch and spatial sizes must '
                                     f'agree (align the modalities before encoding)')
        return num_levels

    def prepare_cond(self, cond: Optional[Dict[str, ModalityFeatures]]):
        """What :meth:`fuse_level` needs from ``cond``; nothing by default."""
        return None

    def fuse_level(self, level: int, feats: Dict[str, torch.Tensor], context) -> torch.Tensor:
        """Fuse the maps ``feats`` (modality -> (B, C_m, H, W)) of one level.

        The one method a spatial fusion must define (the base class checks the
        inputs and loops over the levels)."""
        raise NotImplementedError(f'{type(self).__name__} must define fuse_level(level, feats, '
                                  'context), the fusion of one pyramid level')

    def forward(self, maps: Dict[str, List[torch.Tensor]],
                cond: Optional[Dict[str, ModalityFeatures]] = None) -> List[torch.Tensor]:
        num_levels = self.check_maps(maps)
        context = self.prepare_cond(cond)
        return [self.fuse_level(level, {m: maps[m][level] for m in self.modalities}, context)
                for level in range(num_levels)]


class _ProjectedSum(BaseSpatialFusion):
    """Shared part: a 1x1 conv per modality (and per level) to ``out_channels``."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.proj = self.per_level(lambda: nn.ModuleDict(
            {m: conv1x1(c, self.out_channels) for m, c in self.in_channels.items()}))

    def projections(self, level: int, feats: Dict[str, torch.Tensor]) -> List[torch.Tensor]:
        proj = self.proj[self.weight_index(level)]
        return [proj[m](feats[m]) for m in self.modalities]


@MODELS.register_module()
class SpatialSumFusion(_ProjectedSum):
    """Sum of per-modality projections: ``out_l = sum_m Conv1x1_m(x_{m,l})``.

    The element-wise sum of RGB and depth features used by FuseNet (Hazirbas
    et al., "FuseNet: Incorporating Depth into Semantic Segmentation via
    Fusion-based CNN Architecture", ACCV 2016), with a 1x1 projection per
    modality so that the channel counts may differ. With a single modality it
    is a 1x1 projection, the unimodal baseline of the other fusions.

    Args: as :class:`BaseSpatialFusion`.
    Input/output: as :class:`BaseSpatialFusion`.
    Missing modality: a ConfigError (see :class:`BaseSpatialFusion`).

    Parameter count: ``L * sum_m (C_m + 1) * out_channels`` with L =
    ``num_levels`` (1 when shared).
    """

    def fuse_level(self, level, feats, context):
        return torch.stack(self.projections(level, feats)).sum(dim=0)


@MODELS.register_module()
class SpatialConcatFusion(BaseSpatialFusion):
    """Channel concatenation and a 1x1 conv: ``out_l = Conv1x1([x_{1,l}; x_{2,l}; ...])``.

    The usual early/middle fusion of RGB-D networks (e.g. Gupta et al.,
    "Learning Rich Features from RGB-D Images for Object Detection and
    Segmentation", ECCV 2014, fuse the two streams' features by
    concatenation). Modalities are concatenated in ``in_channels`` order.

    Args: as :class:`BaseSpatialFusion`.
    Input/output: as :class:`BaseSpatialFusion`.
    Missing modality: a ConfigError (see :class:`BaseSpatialFusion`).

    Parameter count: ``L * (sum_m C_m + 1) * out_channels``.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        total = sum(self.in_channels.values())
        self.proj = self.per_level(lambda: conv1x1(total, self.out_channels))

    def fuse_level(self, level, feats, context):
        return self.proj[self.weight_index(level)](torch.cat([feats[m] for m in self.modalities],
                                                             dim=1))


@MODELS.register_module()
class SpatialGatedFusion(_ProjectedSum):
    """Per-pixel gated fusion: each modality's projection weighed by a sigmoid gate.

    The gated information fusion block of Kim et al., "Robust Deep
    Multi-modal Learning Based on Gated Information Fusion Network", ACCV
    2018 (also Cheng et al., "Locality-Sensitive Deconvolution Networks with
    Gated Fusion for RGB-D Indoor Semantic Segmentation", CVPR 2017; ACNet,
    Hu et al. ICIP 2019, gates channels instead of pixels). Each modality is
    projected, ``p_m = Conv1x1_m(x_m)``; a 3x3 conv over the concatenated
    projections gives one gate logit per modality and pixel, and

    ``out = sum_m sigmoid(g_m) * p_m``, ``[g_1, ..., g_M] = Conv3x3([p_1; ...; p_M])``,

    so where one modality is uninformative (depth holes, a dark image) the
    network can turn it down pixel by pixel.

    Args: as :class:`BaseSpatialFusion`; at least two modalities.
    Input/output: as :class:`BaseSpatialFusion`.
    Missing modality: a ConfigError (see :class:`BaseSpatialFusion`).

    Attributes:
        last_gates: the gates of the last call's finest level, Tensor (B, M, H, W),
            detached, modalities in ``in_channels`` order; ``None`` before.

    Parameter count, M modalities and O = ``out_channels``:
    ``L * (sum_m (C_m + 1) * O + (9 * M * O + 1) * M)``.
    """
    min_modalities = 2

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        num = len(self.modalities)
        self.gate = self.per_level(
            lambda: nn.Conv2d(num * self.out_channels, num, kernel_size=3, padding=1))
        self.last_gates: Optional[torch.Tensor] = None

    def fuse_level(self, level, feats, context):
        projected = self.projections(level, feats)
        gates = torch.sigmoid(self.gate[self.weight_index(level)](torch.cat(projected, dim=1)))
        if level == 0:
            self.last_gates = gates.detach()
        return sum(gates[:, i:i + 1] * p for i, p in enumerate(projected))


class _TextConditionedFusion(_ProjectedSum):
    """Shared part of the fusions that condition a visual pyramid on text.

    The visual maps are the sum of the 1x1 projections of the image-like
    modalities (``in_channels``), the text is ``cond[cond_key]``.
    """

    def __init__(self, in_channels: Dict[str, int], out_channels: int, cond_dim: int,
                 cond_key: str = 'text', num_levels: Optional[int] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(in_channels, out_channels, num_levels=num_levels, init_cfg=init_cfg)
        owner = type(self).__name__
        self.cond_dim = check_int(owner, 'cond_dim', cond_dim)
        if not isinstance(cond_key, str) or not cond_key:
            raise ConfigError(f'{owner}: cond_key must be the name of the conditioning '
                              f'modality, e.g. "text", got {cond_key!r}')
        if cond_key in self.in_channels:
            raise ConfigError(f'{owner}: cond_key={cond_key!r} is also an image-like modality '
                              f'in in_channels {sorted(self.in_channels)}; the condition must '
                              'be a non-spatial modality')
        self.cond_key = cond_key

    def visual(self, level: int, feats: Dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.stack(self.projections(level, feats)).sum(dim=0)

    def get_cond(self, cond: Optional[Dict[str, ModalityFeatures]]) -> ModalityFeatures:
        owner = type(self).__name__
        if not cond or self.cond_key not in cond:
            given = sorted(cond) if cond else []
            raise ConfigError(f'{owner} is conditioned on {self.cond_key!r} (cond_key) but the '
                              f'conditions given are {given}; add a {self.cond_key} encoder to '
                              'the model or set cond_key to the conditioning modality')
        feats = cond[self.cond_key]
        if feats.pooled.shape[-1] != self.cond_dim:
            raise ConfigError(f'{owner}: cond_dim={self.cond_dim} but the {self.cond_key} '
                              f'features have size {feats.pooled.shape[-1]}')
        return feats


@MODELS.register_module()
class SpatialFiLMFusion(_TextConditionedFusion):
    """FiLM conditioning of every pyramid level on the pooled text vector.

    Perez et al., "FiLM: Visual Reasoning with a General Conditioning Layer",
    AAAI 2018. With ``v_l = sum_m Conv1x1_m(x_{m,l})`` the visual maps of level
    l and ``t`` the pooled text vector (B, cond_dim):

    ``out_l = ReLU((1 + dgamma_l) * v_l + beta_l)``, ``[dgamma_l, beta_l] = W_l t + b_l``,

    gamma and beta broadcast over the pixels. ``gamma`` is predicted as an
    offset from 1 (as in :class:`~mmfusion.models.fusion.gated.FiLMFusion`),
    and the ReLU follows FiLM as in the paper's FiLM-ed residual blocks; it
    also lets the text switch channels off, which a following GroupNorm would
    otherwise normalise away.

    Args:
        in_channels, out_channels, num_levels: as :class:`BaseSpatialFusion`.
        cond_dim: size D of the pooled conditioning vector.
        cond_key: the conditioning modality in ``cond`` (default ``'text'``).

    Input: ``maps`` as :class:`BaseSpatialFusion`; ``cond[cond_key].pooled`` (B, D).
    Output: [Tensor (B, out_channels, H_l, W_l)], non-negative.

    Missing modality: an absent image-like modality or an absent
    ``cond[cond_key]`` is a ConfigError naming what was expected.

    Parameter count: ``L * (sum_m (C_m + 1) * O + (D + 1) * 2 * O)``.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.film = self.per_level(lambda: nn.Linear(self.cond_dim, 2 * self.out_channels))

    def prepare_cond(self, cond):
        return self.get_cond(cond).pooled

    def fuse_level(self, level, feats, context):
        dgamma, beta = self.film[self.weight_index(level)](context).chunk(2, dim=-1)
        v = self.visual(level, feats)
        return F.relu((1 + dgamma[:, :, None, None]) * v + beta[:, :, None, None])


@MODELS.register_module()
class SpatialCrossAttentionFusion(_TextConditionedFusion):
    """Every pixel attends to the text tokens; residual and LayerNorm.

    Pixel-word attention as in LAVT (Yang et al., "LAVT: Language-Aware
    Vision Transformer for Referring Image Segmentation", CVPR 2022) and the
    early vision-language fusion of GLIP (Li et al., CVPR 2022); MDETR (Kamath
    et al., ICCV 2021) fuses the two in a joint transformer instead. With
    ``v_l`` the visual maps of level l flattened to (B, H_l W_l, O) queries and
    the text tokens (B, N, D) as keys and values:

    ``out_l = LayerNorm(v_l + MultiheadAttention(v_l, tokens, tokens))``,

    padding tokens masked out by ``cond[cond_key].mask``.

    Args:
        in_channels, out_channels, num_levels: as :class:`BaseSpatialFusion`.
        cond_dim: size D of the text tokens.
        cond_key: the conditioning modality in ``cond`` (default ``'text'``).
        num_heads: attention heads; must divide ``out_channels``.
        dropout: on the attention weights.

    Input: ``maps`` as :class:`BaseSpatialFusion`;
    ``cond[cond_key].tokens`` (B, N, D) with ``mask`` (B, N) (True = real
    token; ``None``: all real). An encoder without tokens contributes its
    pooled vector as a single token.
    Output: [Tensor (B, out_channels, H_l, W_l)].

    Missing modality: an absent image-like modality or an absent
    ``cond[cond_key]`` is a ConfigError; a sample whose text has no real token
    gets no attention term (its output is ``LayerNorm(v_l)``).

    Parameter count, O = ``out_channels``:
    ``L * (sum_m (C_m + 1) * O + 2 O (O + 1) + 2 O (D + 1) + 2 O)``.
    """

    def __init__(self, in_channels: Dict[str, int], out_channels: int, cond_dim: int,
                 cond_key: str = 'text', num_heads: int = 4, dropout: float = 0.0,
                 num_levels: Optional[int] = None, init_cfg: Optional[dict] = None) -> None:
        super().__init__(in_channels, out_channels, cond_dim, cond_key=cond_key,
                         num_levels=num_levels, init_cfg=init_cfg)
        owner = type(self).__name__
        check_int(owner, 'num_heads', num_heads)
        if self.out_channels % num_heads:
            raise ConfigError(f'{owner}: num_heads={num_heads} must divide '
                              f'out_channels={self.out_channels}')
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f'{owner}: dropout must be in [0, 1), got {dropout}')
        self.num_heads = num_heads
        self.attn = self.per_level(lambda: nn.MultiheadAttention(
            self.out_channels, num_heads, dropout=dropout, kdim=self.cond_dim,
            vdim=self.cond_dim, batch_first=True))
        self.norm = self.per_level(lambda: nn.LayerNorm(self.out_channels))

    def prepare_cond(self, cond):
        feats = self.get_cond(cond)
        if feats.tokens is None:
            tokens = feats.pooled.unsqueeze(1)
            mask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
        else:
            tokens = feats.tokens
            mask = (torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
                    if feats.mask is None else feats.mask.bool())
        return tokens, mask

    def fuse_level(self, level, feats, context):
        tokens, mask = context
        index = self.weight_index(level)
        v = self.visual(level, feats)
        b, c, h, w = v.shape
        queries = v.flatten(2).transpose(1, 2)  # (B, HW, O)
        attended = masked_cross_attention(self.attn[index], queries, tokens, mask)
        out = self.norm[index](queries + attended)
        return out.transpose(1, 2).reshape(b, c, h, w)
