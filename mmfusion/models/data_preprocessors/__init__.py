from .batch_augments import MultiModalCutMix, MultiModalMixup
from .data_preprocessor import MultiModalDataPreprocessor
from .tokenizers import HFTokenizer, WordLevelTokenizer, build_tokenizer

__all__ = ['HFTokenizer', 'MultiModalCutMix', 'MultiModalDataPreprocessor', 'MultiModalMixup',
           'WordLevelTokenizer', 'build_tokenizer']
