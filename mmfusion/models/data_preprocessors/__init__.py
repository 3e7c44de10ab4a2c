from .data_preprocessor import MultiModalDataPreprocessor

__all__ = ['MultiModalDataPreprocessor']
