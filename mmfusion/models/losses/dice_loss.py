"""Multi-class soft Dice loss for semantic segmentation."""
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmfusion.errors import ConfigError
from mmfusion.registry import MODELS


@MODELS.register_module()
class DiceLoss(nn.Module):
    """Soft Dice loss over softmax probabilities (Milletari et al., "V-Net:
    Fully Convolutional Neural Networks for Volumetric Medical Image
    Segmentation", 3DV 2016), one Dice coefficient per class.

    With ``p`` the softmax of the logits and ``t`` the one-hot target, both
    restricted to the pixels whose label is not ``ignore_index``, summed over
    the batch and the pixels:

    ``D_c = (2 sum p_c t_c + smooth) / (sum p_c^e + sum t_c^e + smooth)``,
    ``loss = loss_weight * (1 - mean_c D_c)``,

    ``e = exponent`` (2, the squares of V-Net; 1 gives the plain soft Dice).
    With ``smooth > 0`` a class absent from both the target and the
    prediction has ``D_c`` close to 1 and adds (almost) nothing.

    Args:
        smooth: added to numerator and denominator (avoids 0/0).
        exponent: power of the terms in the denominator.
        ignore_index: target label of pixels left out.
        loss_weight: a multiplier on the result.

    Input: logits (B, C, H, W) and target (B, H, W) class indices (or
    ``ignore_index``). Output: a scalar.
    """

    def __init__(self, smooth: float = 1.0, exponent: float = 2.0, ignore_index: int = 255,
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        if smooth < 0:
            raise ConfigError(f'DiceLoss: smooth must be >= 0, got {smooth}')
        if exponent <= 0:
            raise ConfigError(f'DiceLoss: exponent must be > 0, got {exponent}')
        self.smooth = float(smooth)
        self.exponent = float(exponent)
        self.ignore_index = int(ignore_index)
        self.loss_weight = float(loss_weight)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if logits.ndim != 4 or target.shape != (logits.shape[0], *logits.shape[2:]):
            raise ValueError(f'DiceLoss: expected logits (B, C, H, W) and target (B, H, W), got '
                             f'{tuple(logits.shape)} and {tuple(target.shape)}')
        num_classes = logits.shape[1]
        valid = (target != self.ignore_index).unsqueeze(1).to(logits.dtype)  # (B, 1, H, W)
        labels = target.masked_fill(target == self.ignore_index, 0).long()
        if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(f'DiceLoss: target labels must be in [0, {num_classes}) or '
                             f'ignore_index={self.ignore_index}, got values in '
                             f'[{int(labels.min())}, {int(labels.max())}]')
        probs = logits.softmax(dim=1) * valid
        onehot = F.one_hot(labels, num_classes).permute(0, 3, 1, 2).to(logits.dtype) * valid
        dims = (0, 2, 3)
        intersection = (probs * onehot).sum(dims)
        denominator = probs.pow(self.exponent).sum(dims) + onehot.pow(self.exponent).sum(dims)
        dice = (2 * intersection + self.smooth) / (denominator + self.smooth).clamp(min=1e-12)
        return self.loss_weight * (1 - dice.mean())
