from .cross_entropy import CrossEntropyLoss
from .contrastive import ClipLoss, SigLipLoss
from .dice_loss import DiceLoss
from .distillation import FitNetsLoss, KDLoss
from .focal_loss import FocalLoss
from .task_weighting import DWATaskWeighting, FixedTaskWeighting, UncertaintyTaskWeighting

__all__ = ['CrossEntropyLoss', 'DiceLoss', 'FocalLoss']
__all__ += ['ClipLoss', 'SigLipLoss']
__all__ += ['DWATaskWeighting', 'FixedTaskWeighting', 'UncertaintyTaskWeighting']
__all__ += ['FitNetsLoss', 'KDLoss']
