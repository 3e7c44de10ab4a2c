"""A third-party fusion module, registered into mmfusion from outside the package."""
from typing import Dict, Optional

import torch
import torch.nn as nn

from mmfusion.models.fusion import BaseVectorFusion
from mmfusion.registry import MODELS


@MODELS.register_module()
class ProductFusion(BaseVectorFusion):
    """Project every modality to ``out_dim`` and multiply them element-wise.

    The multiplicative baseline of Kim et al., "Hadamard Product for Low-rank
    Bilinear Pooling", ICLR 2017, without the low-rank output projection.

    Input: ``feats`` modality -> (B, D_m). Output: (B, out_dim).
    Missing modality (``mask[m]`` False for a sample): its factor is 1, so
    the product runs over the modalities present.
    """

    def __init__(self, in_dims: Dict[str, int], out_dim: int, dropout: float = 0.1,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(in_dims, out_dim, init_cfg=init_cfg)
        self.proj = nn.ModuleDict({m: nn.Sequential(nn.Linear(d, out_dim), nn.Tanh())
                                   for m, d in in_dims.items()})
        self.dropout = nn.Dropout(dropout)

    def forward(self, feats: Dict[str, torch.Tensor],
                mask: Optional[Dict[str, torch.Tensor]] = None) -> torch.Tensor:
        self.check_inputs(feats)
        fused = None
        for name in self.modalities:
            factor = self.proj[name](feats[name])
            if mask is not None and name in mask:
                factor = torch.where(mask[name].unsqueeze(-1), factor, torch.ones_like(factor))
            fused = factor if fused is None else fused * factor
        return self.dropout(fused)
