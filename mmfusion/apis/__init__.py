from .inferencer import MultiModalInferencer

__all__ = ['MultiModalInferencer']
