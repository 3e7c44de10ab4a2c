from .base import BaseMultiModalDataset
from .classification import MMShapesClsDataset, MultiModalClsDataset
from .mmshapes import DEFAULT_MMSHAPES, ensure_mmshapes, generate_mmshapes
from .tokenizers import HFTokenizer, WordLevelTokenizer, build_tokenizer
from .transforms import *  # noqa: F401,F403
from .vqa import MMShapesVQADataset, VQAv2Dataset

__all__ = ['BaseMultiModalDataset', 'DEFAULT_MMSHAPES', 'ensure_mmshapes', 'generate_mmshapes',
           'HFTokenizer', 'MMShapesClsDataset', 'MMShapesVQADataset', 'MultiModalClsDataset',
           'VQAv2Dataset', 'WordLevelTokenizer', 'build_tokenizer']
