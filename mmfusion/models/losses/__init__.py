from .cross_entropy import CrossEntropyLoss
from .dice_loss import DiceLoss
from .focal_loss import FocalLoss

__all__ = ['CrossEntropyLoss', 'DiceLoss', 'FocalLoss']
