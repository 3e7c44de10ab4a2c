from .base import BaseEncoder, ModalityFeatures, masked_mean
from .image import TimmEncoder
from .text import HFTextEncoder, WordEmbeddingEncoder

__all__ = ['BaseEncoder', 'ModalityFeatures', 'masked_mean', 'TimmEncoder', 'HFTextEncoder',
           'WordEmbeddingEncoder']
