from .base import BaseMultiModalDataset
from .classification import MMShapesClsDataset, MultiModalClsDataset
from .detection import CocoMultiModalDataset, MMShapesDetDataset
from .mmshapes import DEFAULT_MMSHAPES, ensure_mmshapes, generate_mmshapes
from .segmentation import (
    CocoSegDataset,
    MMShapesSegDataset,
    RefSegDataset,
    SegMultiModalDataset,
)
from .tokenizers import HFTokenizer, WordLevelTokenizer, build_tokenizer
from .transforms import *  # noqa: F401,F403
from .vqa import MMShapesVQADataset, VQAv2Dataset

__all__ = ['BaseMultiModalDataset', 'CocoMultiModalDataset', 'CocoSegDataset', 'DEFAULT_MMSHAPES',
           'ensure_mmshapes', 'generate_mmshapes', 'HFTokenizer', 'MMShapesClsDataset',
           'MMShapesDetDataset', 'MMShapesSegDataset', 'MMShapesVQADataset',
           'MultiModalClsDataset', 'RefSegDataset', 'SegMultiModalDataset', 'VQAv2Dataset',
           'WordLevelTokenizer', 'build_tokenizer']
