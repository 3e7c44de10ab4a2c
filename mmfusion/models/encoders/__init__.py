from .audio import ASTEncoder, AudioCNNEncoder
from .base import BaseEncoder, ModalityFeatures, masked_mean
from .image import TimmEncoder
from .text import HFTextEncoder, TextCNNEncoder, WordEmbeddingEncoder
from .vector import MLPEncoder

__all__ = ['ASTEncoder', 'AudioCNNEncoder', 'BaseEncoder', 'ModalityFeatures', 'masked_mean',
           'MLPEncoder', 'TextCNNEncoder', 'TimmEncoder', 'HFTextEncoder', 'WordEmbeddingEncoder']
