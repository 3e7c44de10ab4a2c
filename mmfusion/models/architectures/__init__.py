from .base import BaseMultiModalModel
from .classifier import MultiModalClassifier
from .dense import MultiModalDenseModel

__all__ = ['BaseMultiModalModel', 'MultiModalClassifier', 'MultiModalDenseModel']
