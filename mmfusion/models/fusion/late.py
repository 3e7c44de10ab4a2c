"""Late (decision-level) fusion: one head per modality, decisions combined."""
import math
from collections.abc import Sequence

import torch
from torch import nn

from mmfusion.registry import MODELS

from ..layers import build_mlp, check_dropout, masked_outputs, masked_softmax, present_mask
from .base import BaseVectorFusion


@MODELS.register_module()
class LateFusion(BaseVectorFusion):
    """Late fusion: each modality decides on its own, the decisions are combined.

    Each modality m has its own MLP head, ``[Linear, ReLU, Dropout] *
    len(hidden_dims)`` followed by ``Linear(-> out_dim)``, giving per-modality
    logits ``s_m`` (B, out_dim); ``out_dim`` is typically the number of
    classes. The output is itself a vector of logits, so use it with
    ``ClsHead(..., fc=False)``, which takes the fusion output as the logits
    instead of adding another Linear. The decisions are combined by
    ``combine``:

    * ``'mean'``: the mean of the logits, ``sum_m s_m / M``;
    * ``'weighted'``: ``sum_m w_m s_m`` with ``w = softmax(l)``, ``l`` a learned
      scalar logit per modality (initialised to zero, i.e. the mean);
    * ``'vote'``: soft voting, ``log(sum_m softmax(s_m) / M)``, the log of the
      mean of the per-modality class probabilities. ``softmax`` of it is that
      mean, so a cross-entropy loss on the output trains the mixture of the
      modalities' predictions (computed by a logsumexp, stable for large logits).

    Read each modality's own decision with :meth:`forward_per_modality`.

    Args:
        in_dims: modality -> feature size D_m, e.g. ``dict(image=512, text=128)``;
            at least two modalities for ``'weighted'``.
        out_dim: size of each decision (number of classes).
        hidden_dims: sizes of the hidden layers of each head; ``()`` means a
            single Linear layer per modality.
        dropout: dropout probability after each hidden layer.
        combine: ``'mean'``, ``'weighted'`` or ``'vote'``.

    Inputs: ``feats`` and ``mask`` as in :class:`BaseVectorFusion`.

    Returns:
        Tensor (B, out_dim) of logits (log-probabilities for ``'vote'``).

    Missing modality: its decision is excluded for that sample: the mean, the
    softmax weights and the vote run over the modalities present, so a
    sample with one modality present gets that modality's logits (its
    ``log_softmax`` for ``'vote'``). If every modality of a sample is missing,
    the output is the uniform decision: zeros (``log(1 / out_dim)`` for
    ``'vote'``). Features of a missing sample (even NaN) never reach the output.

    Parameter count: ``sum_m sum_l (d_l + 1) * d_{l+1}`` over the layer sizes
    ``d = [D_m, *hidden_dims, out_dim]`` of each head, plus M (the modality
    logits) for ``'weighted'``.
    """

    COMBINES = ('mean', 'weighted', 'vote')

    def __init__(self,
                 in_dims: dict[str, int],
                 out_dim: int,
                 hidden_dims: Sequence[int] = (),
                 dropout: float = 0.0,
                 combine: str = 'mean',
                 init_cfg: dict | None = None) -> None:
        super().__init__(in_dims, out_dim, init_cfg=init_cfg)
        if combine not in self.COMBINES:
            raise ValueError(f'LateFusion: combine must be one of {self.COMBINES}, '
                             f'got {combine!r}')
        if combine == 'weighted' and len(self.in_dims) < 2:
            raise ValueError(f"LateFusion: combine='weighted' needs at least 2 modalities, "
                             f'got in_dims with {len(self.in_dims)}: {sorted(self.in_dims)}')
        check_dropout(type(self).__name__, dropout)
        self.combine = combine
        self.hidden_dims = tuple(int(h) for h in hidden_dims)
        self.heads = nn.ModuleDict({
            name: build_mlp([dim, *self.hidden_dims, self.out_dim], dropout)
            for name, dim in self.in_dims.items()
        })
        if combine == 'weighted':
            self.weight_logits = nn.Parameter(torch.zeros(len(self.modalities)))

    def forward_per_modality(self, feats: dict[str, torch.Tensor],
                             mask: dict[str, torch.Tensor] | None = None
                             ) -> dict[str, torch.Tensor]:
        """Each modality's own logits: modality -> Tensor (B, out_dim).

        Rows of samples where the modality is missing are zeros (no decision).
        """
        self.check_inputs(feats)
        return masked_outputs(self, feats, mask, lambda name, x: self.heads[name](x))

    def forward(self, feats: dict[str, torch.Tensor],
                mask: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        decisions = self.forward_per_modality(feats, mask)
        if self.combine == 'mean' and not mask:
            # every modality present: the plain mean, without stacking the logits
            return sum(decisions.values()) / len(decisions)
        logits = torch.stack([decisions[name] for name in self.modalities], dim=1)  # (B, M, C)
        present = present_mask(self, feats, mask)  # (B, M)
        count = present.sum(dim=1, keepdim=True)  # (B, 1)

        if self.combine == 'vote':
            log_probs = logits.log_softmax(dim=-1).masked_fill(
                ~present.unsqueeze(-1), torch.finfo(logits.dtype).min)
            voted = log_probs.logsumexp(dim=1) - count.clamp(min=1).to(logits.dtype).log()
            uniform = torch.full_like(voted, -math.log(self.out_dim))
            return torch.where(count > 0, voted, uniform)

        if self.combine == 'weighted':
            weights = masked_softmax(self.weight_logits.expand_as(present), present, dim=1)
        else:
            weights = present.to(logits.dtype) / count.clamp(min=1).to(logits.dtype)
        return (weights.unsqueeze(-1) * logits).sum(dim=1)
