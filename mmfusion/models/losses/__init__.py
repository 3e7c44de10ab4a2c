from .contrastive import ClipLoss, SigLipLoss
from .cross_entropy import CrossEntropyLoss
from .dice_loss import DiceLoss
from .distillation import FitNetsLoss, KDLoss
from .focal_loss import FocalLoss
from .task_weighting import DWATaskWeighting, FixedTaskWeighting, UncertaintyTaskWeighting

__all__ = ['ClipLoss', 'CrossEntropyLoss', 'DWATaskWeighting', 'DiceLoss', 'FitNetsLoss',
           'FixedTaskWeighting', 'FocalLoss', 'KDLoss', 'SigLipLoss', 'UncertaintyTaskWeighting']
