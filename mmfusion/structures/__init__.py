from .data_sample import MultiModalDataSample

__all__ = ['MultiModalDataSample']
