"""Bilinear-pooling fusion of pooled vectors."""
import math

import torch
import torch.nn.functional as F
from torch import nn

from mmfusion.registry import MODELS

from .base import BaseVectorFusion
from .concat import fill_missing


def masked_product(fusion: BaseVectorFusion, feats: dict[str, torch.Tensor],
                   mask: dict[str, torch.Tensor] | None, factor) -> torch.Tensor:
    """Element-wise product over modalities of ``factor(name, x)``.

    A missing modality (``mask[name]`` False for a sample) contributes ones,
    the identity of the product, so it drops out; its input is zeroed first,
    because the weight gradient multiplies the features and NaN in a missing
    sample would otherwise reach it.
    """
    owner = type(fusion).__name__
    mask = mask or {}
    joint: torch.Tensor | None = None
    for name in fusion.modalities:
        present = mask.get(name)
        x = fill_missing(feats[name], present, 0.0, name, owner)
        z = fill_missing(factor(name, x), present, 1.0, name, owner)
        joint = z if joint is None else joint * z
    return joint


@MODELS.register_module()
class MFBFusion(BaseVectorFusion):
    """Multi-modal Factorized Bilinear pooling (MFB).

    Yu et al., "Multi-modal Factorized Bilinear Pooling with Co-Attention
    Learning for Visual Question Answering", ICCV 2017.

    Each modality m is projected by ``Linear(D_m, k * out_dim)``; the
    projections are multiplied element-wise (all of them, for more than two
    modalities), passed through dropout, sum-pooled over consecutive groups of
    ``k``, then power-normalised by the signed square root
    ``sign(z) * (sqrt(|z| + eps) - sqrt(eps))`` (``eps`` keeps the gradient
    finite at 0; subtracting ``sqrt(eps)`` keeps the map continuous there) and
    L2-normalised, so every output row has unit norm.

    Args:
        in_dims: modality -> feature size D_m; at least two modalities.
        out_dim: size of the fused vector (``o`` in the paper).
        factor_k: factor (rank) ``k`` of the low-rank bilinear approximation.
        dropout: dropout probability on the ``k * out_dim`` product.
        eps: epsilon of the signed square root.

    Inputs:
        feats: modality -> Tensor (B, D_m).
        mask: optional modality -> BoolTensor (B,), False where the modality is
            missing for a sample; modalities absent from ``mask`` are present.

    Returns:
        Tensor (B, out_dim) with unit L2 norm per row.

    Missing modality: its projection is replaced by ones for that sample, so
    the product ignores it and the output is built from the other modalities
    only. If every modality of a sample is missing, the product is all ones
    and (in eval mode) the output is the constant vector ``1 / sqrt(out_dim)``.

    Parameter count: ``sum_m (D_m + 1) * k * out_dim``.
    """

    def __init__(self,
                 in_dims: dict[str, int],
                 out_dim: int,
                 factor_k: int = 5,
                 dropout: float = 0.1,
                 eps: float = 1e-8,
                 init_cfg: dict | None = None) -> None:
        super().__init__(in_dims, out_dim, init_cfg=init_cfg)
        if len(self.in_dims) < 2:
            raise ValueError(f'MFBFusion fuses at least 2 modalities, got in_dims with '
                             f'{len(self.in_dims)}: {sorted(self.in_dims)}; use '
                             f'ConcatFusion for a unimodal baseline')
        if factor_k < 1:
            raise ValueError(f'MFBFusion: factor_k must be >= 1, got {factor_k}')
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f'MFBFusion: dropout must be in [0, 1), got {dropout}')
        self.factor_k = int(factor_k)
        self.eps = float(eps)
        self.proj = nn.ModuleDict({
            name: nn.Linear(dim, self.factor_k * self.out_dim)
            for name, dim in self.in_dims.items()
        })
        self.dropout = nn.Dropout(dropout)

    def forward(self, feats: dict[str, torch.Tensor],
                mask: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        self.check_inputs(feats)
        joint = masked_product(self, feats, mask, lambda name, x: self.proj[name](x))
        joint = self.dropout(joint)
        # Sum-pooling over groups of k turns the rank-k factorisation into one
        # bilinear output per unit.
        pooled = joint.view(joint.shape[0], self.out_dim, self.factor_k).sum(dim=-1)
        # Power normalisation tames the large magnitudes produced by the product.
        pooled = torch.sign(pooled) * (
            torch.sqrt(pooled.abs() + self.eps) - math.sqrt(self.eps))
        return F.normalize(pooled, p=2, dim=-1)


@MODELS.register_module()
class MLBFusion(BaseVectorFusion):
    """Multimodal Low-rank Bilinear pooling (MLB).

    Kim et al., "Hadamard Product for Low-rank Bilinear Pooling", ICLR 2017:
    ``z = P (tanh(U_1 x_1) * tanh(U_2 x_2) * ...)``, a rank-``hidden_dim``
    bilinear (multilinear, for more modalities) map.

    Args:
        in_dims: modality -> feature size D_m; at least two modalities.
        out_dim: size of the fused vector.
        hidden_dim: rank of the factorisation (size of the Hadamard product).
        dropout: dropout probability on the product.

    Inputs:
        feats: modality -> Tensor (B, D_m).
        mask: optional modality -> BoolTensor (B,), False where missing.

    Returns:
        Tensor (B, out_dim).

    Missing modality: its factor is replaced by ones for that sample, so the
    product runs over the modalities present.

    Parameter count: ``sum_m (D_m + 1) * hidden_dim + (hidden_dim + 1) * out_dim``.
    """

    def __init__(self,
                 in_dims: dict[str, int],
                 out_dim: int,
                 hidden_dim: int = 1024,
                 dropout: float = 0.1,
                 init_cfg: dict | None = None) -> None:
        super().__init__(in_dims, out_dim, init_cfg=init_cfg)
        if len(self.in_dims) < 2:
            raise ValueError(f'MLBFusion fuses at least 2 modalities, got in_dims with '
                             f'{len(self.in_dims)}: {sorted(self.in_dims)}; use '
                             f'ConcatFusion for a unimodal baseline')
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f'MLBFusion: dropout must be in [0, 1), got {dropout}')
        self.proj = nn.ModuleDict({name: nn.Linear(dim, hidden_dim)
                                   for name, dim in self.in_dims.items()})
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden_dim, self.out_dim)

    def forward(self, feats: dict[str, torch.Tensor],
                mask: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        self.check_inputs(feats)
        joint = masked_product(self, feats, mask,
                               lambda name, x: torch.tanh(self.proj[name](x)))
        return self.out(self.dropout(joint))
