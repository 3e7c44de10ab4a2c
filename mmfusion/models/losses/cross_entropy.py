"""Cross-entropy for hard labels, soft targets and multi-label (sigmoid) outputs."""
from typing import Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmfusion.registry import MODELS


@MODELS.register_module()
class CrossEntropyLoss(nn.Module):
    """Softmax or sigmoid cross-entropy on (B, C) logits (thin wrapper over torch).

    Args:
        use_sigmoid: binary cross-entropy per class (multi-label, VQA soft
            scores) instead of softmax cross-entropy.
        class_reduction: with ``use_sigmoid``, ``'mean'`` averages over
            classes; ``'sum'`` sums them (then averages over the batch), the
            usual VQA loss of Teney et al. 2018 whose scale does not shrink as
            the answer vocabulary grows.
        label_smoothing: softmax only, as in ``F.cross_entropy``.
        class_weight: per-class weights (C,), for imbalanced data.
        loss_weight: a multiplier on the result.

    Targets: (B,) class indices or (B, C) probabilities for softmax;
    (B, C) values in [0, 1] for sigmoid.
    """

    def __init__(self, use_sigmoid: bool = False, class_reduction: str = 'mean',
                 label_smoothing: float = 0.0, class_weight: Optional[Sequence[float]] = None,
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        if class_reduction not in ('mean', 'sum'):
            raise ValueError(f"class_reduction must be 'mean' or 'sum', got {class_reduction!r}")
        self.use_sigmoid = use_sigmoid
        self.class_reduction = class_reduction
        self.label_smoothing = label_smoothing
        self.loss_weight = loss_weight
        weight = torch.tensor(class_weight, dtype=torch.float) if class_weight is not None else None
        self.register_buffer('class_weight', weight, persistent=False)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.use_sigmoid:
            loss = F.binary_cross_entropy_with_logits(
                logits, target.to(logits.dtype), weight=self.class_weight, reduction='none')
            loss = loss.sum(dim=1) if self.class_reduction == 'sum' else loss.mean(dim=1)
            loss = loss.mean()
        else:
            loss = F.cross_entropy(logits, target, weight=self.class_weight,
                                   label_smoothing=self.label_smoothing)
        return loss * self.loss_weight
