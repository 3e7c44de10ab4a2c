"""Linear fusion of pooled vectors: per-modality projections that are summed."""
import functools
import operator

import torch
import torch.nn.functional as F
from torch import nn

from mmfusion.registry import MODELS

from ..layers import (
    check_min_modalities,
    masked_outputs,
    masked_softmax,
    modality_linears,
    present_mask,
)
from .base import BaseVectorFusion


def _masked_projections(fusion: BaseVectorFusion, projections: nn.ModuleDict,
                        feats: dict[str, torch.Tensor],
                        mask: dict[str, torch.Tensor] | None) -> list[torch.Tensor]:
    """``projections[m](x_m)`` (B, out_dim) for each modality in order, with
    zeros where m is missing (its bias does not count either; see
    :func:`~mmfusion.models.layers.masked_outputs`). A list, not a stacked
    (B, M, out_dim) tensor: the sums below need no copy of the projections."""
    return list(masked_outputs(fusion, feats, mask, lambda name, x: projections[name](x)).values())


@MODELS.register_module()
class SumFusion(BaseVectorFusion):
    """Fusion by summing per-modality linear projections.

    ``z = sum_m (W_m x_m + b_m)``, followed by a ReLU if ``act_out``. Without
    the ReLU this is the same function as ``ConcatFusion`` with no hidden
    layer (``W [x_1; x_2; ...] + b`` with ``W = [W_1, W_2, ...]`` and
    ``b = sum_m b_m``), parameterised per modality so that a missing modality
    can be dropped with its bias. With a single modality it is the unimodal
    linear baseline.

    Args:
        in_dims: modality -> feature size D_m, e.g. ``dict(image=512, text=128)``.
        out_dim: size of the fused vector.
        act_out: apply ReLU to the output (as ``ConcatFusion``).

    Inputs: ``feats`` and ``mask`` as in :class:`BaseVectorFusion`.

    Returns:
        Tensor (B, out_dim).

    Missing modality: it contributes nothing for that sample, its bias
    ``b_m`` included, so the output is the sum over the present modalities
    only. If every modality of a sample is missing, the output is the zero
    vector. Features of a missing sample (even NaN) never reach the output.

    Parameter count: ``sum_m (D_m + 1) * out_dim``.
    """

    def __init__(self,
                 in_dims: dict[str, int],
                 out_dim: int,
                 act_out: bool = True,
                 init_cfg: dict | None = None) -> None:
        super().__init__(in_dims, out_dim, init_cfg=init_cfg)
        self.act_out = act_out
        self.proj = modality_linears(self.in_dims, self.out_dim)

    def forward(self, feats: dict[str, torch.Tensor],
                mask: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        self.check_inputs(feats)
        out = functools.reduce(operator.add, _masked_projections(self, self.proj, feats, mask))
        return F.relu(out) if self.act_out else out


@MODELS.register_module()
class LinearSumFusion(BaseVectorFusion):
    """Weighted sum of per-modality projections with learned modality weights.

    ``z = sum_m w_m (W_m x_m + b_m)`` with ``w = softmax(l)``, where ``l`` is
    a learned vector of one scalar logit per modality (initialised to zero,
    i.e. equal weights ``1 / M``), followed by a ReLU if ``act_out``. The
    weights are shared by all samples; read them with :attr:`modality_weights`.

    Args:
        in_dims: modality -> feature size D_m; at least two modalities.
        out_dim: size of the fused vector.
        act_out: apply ReLU to the output (as ``ConcatFusion``).

    Inputs: ``feats`` and ``mask`` as in :class:`BaseVectorFusion`.

    Returns:
        Tensor (B, out_dim).

    Missing modality: its weight is set to 0 and the softmax is renormalised
    over the modalities present for that sample, so the weights of a sample
    always sum to 1 (a single present modality gets weight 1). If every
    modality of a sample is missing, all weights are 0 and the output is the
    zero vector. Features of a missing sample (even NaN) never reach the output.

    Parameter count: ``sum_m (D_m + 1) * out_dim + M`` for M modalities.
    """

    def __init__(self,
                 in_dims: dict[str, int],
                 out_dim: int,
                 act_out: bool = True,
                 init_cfg: dict | None = None) -> None:
        super().__init__(in_dims, out_dim, init_cfg=init_cfg)
        check_min_modalities(type(self).__name__, self.in_dims, baseline='SumFusion')
        self.act_out = act_out
        self.proj = modality_linears(self.in_dims, self.out_dim)
        self.weight_logits = nn.Parameter(torch.zeros(len(self.modalities)))

    @property
    def modality_weights(self) -> dict[str, float]:
        """The learned weight of each modality when all are present."""
        weights = self.weight_logits.detach().softmax(dim=0)
        return {name: float(w) for name, w in zip(self.modalities, weights)}

    def forward(self, feats: dict[str, torch.Tensor],
                mask: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        self.check_inputs(feats)
        parts = _masked_projections(self, self.proj, feats, mask)  # M x (B, out_dim)
        present = present_mask(self, feats, mask)  # (B, M)
        weights = masked_softmax(self.weight_logits.expand_as(present), present, dim=1)
        out = functools.reduce(operator.add, (weights[:, i, None] * part
                                              for i, part in enumerate(parts)))
        return F.relu(out) if self.act_out else out
