from .classifier import MultiModalClassifier

__all__ = ['MultiModalClassifier']
