"""Bilinear-pooling fusion of pooled vectors."""
import torch
from torch import nn

from mmfusion.registry import MODELS

from ..layers import (
    check_dropout,
    check_min_modalities,
    check_positive,
    masked_product,
    modality_linears,
    power_l2_normalize,
)
from .base import BaseVectorFusion


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

    Inputs: ``feats`` and ``mask`` as in :class:`BaseVectorFusion`.

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
        owner = type(self).__name__
        check_min_modalities(owner, self.in_dims, baseline='ConcatFusion')
        check_positive(owner, factor_k=factor_k)
        check_dropout(owner, dropout)
        self.factor_k = int(factor_k)
        self.eps = float(eps)
        self.proj = modality_linears(self.in_dims, self.factor_k * self.out_dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, feats: dict[str, torch.Tensor],
                mask: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        self.check_inputs(feats)
        joint = masked_product(self, feats, mask, lambda name, x: self.proj[name](x))
        joint = self.dropout(joint)
        # Sum-pooling over groups of k turns the rank-k factorisation into one
        # bilinear output per unit.
        pooled = joint.view(joint.shape[0], self.out_dim, self.factor_k).sum(dim=-1)
        return power_l2_normalize(pooled, self.eps)


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

    Inputs: ``feats`` and ``mask`` as in :class:`BaseVectorFusion`.

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
        owner = type(self).__name__
        check_min_modalities(owner, self.in_dims, baseline='ConcatFusion')
        check_dropout(owner, dropout)
        self.proj = modality_linears(self.in_dims, hidden_dim)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden_dim, self.out_dim)

    def forward(self, feats: dict[str, torch.Tensor],
                mask: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        self.check_inputs(feats)
        joint = masked_product(self, feats, mask,
                               lambda name, x: torch.tanh(self.proj[name](x)))
        return self.out(self.dropout(joint))


@MODELS.register_module()
class MFHFusion(BaseVectorFusion):
    """Multi-modal Factorized High-order pooling (MFH).

    Yu et al., "Beyond Bilinear: Generalized Multimodal Factorized High-order
    Pooling for Visual Question Answering", TNNLS 2018.

    ``order`` MFB blocks are cascaded. Block ``i`` projects every modality m
    by its own ``Linear(D_m, k * block_dim)`` and multiplies the projections
    element-wise (all of them, for more than two modalities); from the second
    block on, this product is also multiplied by the previous block's
    expanded product, which makes block ``i`` a polynomial of order ``i`` in
    each modality. Each block's (dropped-out) expanded product is sum-pooled
    over groups of ``k``, power- and L2-normalised exactly as in
    :class:`MFBFusion`, and the ``order`` block outputs are concatenated.

    Output size: ``out_dim = order * block_dim``, so ``out_dim`` must be
    divisible by ``order``. Each block's part has unit L2 norm, so every
    output row has norm ``sqrt(order)``. With ``order=1`` this is MFB.

    Args:
        in_dims: modality -> feature size D_m; at least two modalities.
        out_dim: size of the fused vector, a multiple of ``order``.
        order: number of cascaded MFB blocks (the paper uses 2 or 3).
        factor_k: factor (rank) ``k`` of each block's low-rank bilinear map.
        dropout: dropout probability on each block's expanded product (the
            dropped-out product is also what the next block multiplies by).
        eps: epsilon of the signed square root.

    Inputs: ``feats`` and ``mask`` as in :class:`BaseVectorFusion`.

    Returns:
        Tensor (B, out_dim), each of the ``order`` consecutive parts of size
        ``out_dim // order`` with unit L2 norm.

    Missing modality: in every block its projection is replaced by ones for
    that sample, so the whole cascade runs over the other modalities only.

    Parameter count: ``order * sum_m (D_m + 1) * k * (out_dim // order)``.
    """

    def __init__(self,
                 in_dims: dict[str, int],
                 out_dim: int,
                 order: int = 2,
                 factor_k: int = 5,
                 dropout: float = 0.1,
                 eps: float = 1e-8,
                 init_cfg: dict | None = None) -> None:
        super().__init__(in_dims, out_dim, init_cfg=init_cfg)
        owner = type(self).__name__
        check_min_modalities(owner, self.in_dims, baseline='ConcatFusion')
        check_positive(owner, order=order)
        if self.out_dim < order or self.out_dim % order:
            raise ValueError(f'{owner}: out_dim={self.out_dim} must be a positive '
                             f'multiple of order={order}, because the output concatenates '
                             f'order blocks of out_dim // order units each')
        check_positive(owner, factor_k=factor_k)
        check_dropout(owner, dropout)
        self.order = int(order)
        self.block_dim = self.out_dim // self.order
        self.factor_k = int(factor_k)
        self.eps = float(eps)
        self.proj = nn.ModuleList(
            modality_linears(self.in_dims, self.factor_k * self.block_dim)
            for _ in range(self.order))
        self.dropout = nn.Dropout(dropout)

    def forward(self, feats: dict[str, torch.Tensor],
                mask: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        self.check_inputs(feats)
        outs = []
        expanded: torch.Tensor | None = None
        for proj in self.proj:
            joint = masked_product(self, feats, mask, lambda name, x, p=proj: p[name](x))
            if expanded is not None:
                joint = joint * expanded
            expanded = self.dropout(joint)
            pooled = expanded.view(expanded.shape[0], self.block_dim, self.factor_k).sum(-1)
            outs.append(power_l2_normalize(pooled, self.eps))
        return torch.cat(outs, dim=-1)
