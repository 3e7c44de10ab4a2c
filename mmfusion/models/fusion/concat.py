"""Early fusion by concatenation."""
from collections.abc import Sequence

import torch

from mmfusion.registry import MODELS

from ..layers import build_mlp, check_dropout, zero_missing
from .base import BaseVectorFusion


@MODELS.register_module()
class ConcatFusion(BaseVectorFusion):
    """Early fusion: concatenate the modality vectors, then project.

    The vectors are concatenated in ``in_dims`` order into one vector of size
    ``D = sum_m D_m``, which an MLP maps to ``out_dim``:
    ``[Linear, ReLU, Dropout] * len(hidden_dims)`` followed by
    ``Linear(-> out_dim)`` and, if ``act_out``, a final ReLU. With a single
    modality this is the unimodal baseline through the same code path.

    Args:
        in_dims: modality -> feature size D_m, e.g. ``dict(image=512, text=128)``.
        out_dim: size of the fused vector.
        hidden_dims: sizes of the hidden layers of the MLP; ``()`` means a single
            Linear layer.
        dropout: dropout probability after each hidden layer.
        act_out: apply ReLU to the output.

    Inputs: ``feats`` and ``mask`` as in :class:`BaseVectorFusion`.

    Returns:
        Tensor (B, out_dim).

    Missing modality: that modality's vector is replaced by zeros for that
    sample (its features, even NaN, never reach the output).

    Parameter count: ``sum_l (d_l + 1) * d_{l+1}`` over the layer sizes
    ``d = [sum_m D_m, *hidden_dims, out_dim]``.
    """

    def __init__(self,
                 in_dims: dict[str, int],
                 out_dim: int,
                 hidden_dims: Sequence[int] = (),
                 dropout: float = 0.0,
                 act_out: bool = True,
                 init_cfg: dict | None = None) -> None:
        super().__init__(in_dims, out_dim, init_cfg=init_cfg)
        check_dropout(type(self).__name__, dropout)
        self.hidden_dims = tuple(int(h) for h in hidden_dims)
        self.act_out = act_out
        self.mlp = build_mlp([sum(self.in_dims.values()), *self.hidden_dims, self.out_dim],
                             dropout, act_out)

    def forward(self, feats: dict[str, torch.Tensor],
                mask: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        self.check_inputs(feats)
        parts = zero_missing(self, feats, mask)
        return self.mlp(torch.cat(list(parts.values()), dim=-1))
