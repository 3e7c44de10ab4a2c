from .base import BaseMultiModalModel
from .classifier import MultiModalClassifier

__all__ = ['BaseMultiModalModel', 'MultiModalClassifier']
