"""Sigmoid focal loss (torchvision's implementation) for single- and multi-label outputs."""
import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.ops import sigmoid_focal_loss

from mmfusion.registry import MODELS


@MODELS.register_module()
class FocalLoss(nn.Module):
    """Focal loss on (B, C) logits: Lin et al., "Focal Loss for Dense Object
    Detection", ICCV 2017, computed by ``torchvision.ops.sigmoid_focal_loss``.

    Each class is an independent sigmoid, so the loss serves multi-label
    targets directly and single-label targets as one-hot rows.

    Args:
        gamma: focusing parameter; 0 gives (alpha-weighted) binary cross-entropy.
        alpha: weight of the positive class in (0, 1), or a negative value
            for no weighting.
        class_reduction: ``'mean'`` or ``'sum'`` over classes (then the mean
            over the batch).
        loss_weight: a multiplier on the result.

    Targets: (B,) class indices or (B, C) values in [0, 1].
    """
    use_sigmoid = True  # heads turn logits into scores with a sigmoid

    def __init__(self, gamma: float = 2.0, alpha: float = 0.25, class_reduction: str = 'mean',
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        if gamma < 0:
            raise ValueError(f'FocalLoss: gamma must be >= 0, got {gamma}')
        if alpha >= 1:
            raise ValueError(f'FocalLoss: alpha must be < 1 (negative: no weighting), got {alpha}')
        if class_reduction not in ('mean', 'sum'):
            raise ValueError(f"FocalLoss: class_reduction must be 'mean' or 'sum', "
                             f'got {class_reduction!r}')
        self.gamma = gamma
        self.alpha = alpha
        self.class_reduction = class_reduction
        self.loss_weight = loss_weight

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if target.ndim == 1:
            target = F.one_hot(target.long(), logits.shape[1])
        if target.shape != logits.shape:
            raise ValueError(f'FocalLoss: target of shape {tuple(target.shape)} does not match '
                             f'logits {tuple(logits.shape)}; expected (B,) or (B, C)')
        loss = sigmoid_focal_loss(logits, target.to(logits.dtype), alpha=self.alpha,
                                  gamma=self.gamma, reduction='none')
        loss = loss.sum(dim=1) if self.class_reduction == 'sum' else loss.mean(dim=1)
        return loss.mean() * self.loss_weight
