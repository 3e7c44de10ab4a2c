"""Datasets: one class per on-disk format and task, plus the embedded MMShapes.

Naming rule: ``<Format><Task>Dataset``, where

* ``Format`` is the on-disk format the class reads: ``Coco`` (a COCO
  instances file, optionally with a RefCOCO-like refs file), ``List`` (a list
  file with one sample per row: JSON lines or CSV; for segmentation also a
  COCO-style ``images`` list naming mask PNGs), ``MMShapes`` (the embedded
  synthetic dataset, generated on first use);
* ``Task`` is what a sample is labelled for: ``Cls``, ``Det``, ``Seg``,
  ``RefSeg``, ``VQA``.

A format that is itself task-specific keeps its own name: ``VQAv2Dataset``.
``BaseMultiModalDataset`` is the base of them all. The names of the previous
release (``MultiModalClsDataset``, ``CocoMultiModalDataset``,
``SegMultiModalDataset``, ``RefSegDataset``) still build, with a
deprecation warning naming the new one (:mod:`.deprecated`); see
``docs/datasets.md``.
"""
from .base import BaseMultiModalDataset
from .captions import CocoCaptionDataset, ListCaptionDataset, MMShapesCaptionDataset
from .classification import ListClsDataset
from .deprecated import (
    CocoMultiModalDataset,
    MultiModalClsDataset,
    RefSegDataset,
    SegMultiModalDataset,
)
from .detection import CocoDetDataset
from .mmshapes import (
    DEFAULT_MMSHAPES,
    MMShapesClsDataset,
    MMShapesDetDataset,
    MMShapesSegDataset,
    MMShapesVQADataset,
    ensure_mmshapes,
    generate_mmshapes,
)
from .multi_task import MultiTaskDataset, MultiTaskSampler, TaskBatchSampler
from .samplers import MultiModalClassBalancedDataset, RepeatFactorSampler
from .segmentation import CocoRefSegDataset, CocoSegDataset, ListSegDataset
from .tokenizers import HFTokenizer, WordLevelTokenizer, build_tokenizer
from .transforms import *  # noqa: F401,F403
from .vqa import VQAv2Dataset

__all__ = ['BaseMultiModalDataset', 'CocoCaptionDataset', 'CocoDetDataset', 'CocoRefSegDataset',
           'CocoSegDataset', 'DEFAULT_MMSHAPES', 'ensure_mmshapes', 'generate_mmshapes',
           'HFTokenizer', 'ListCaptionDataset', 'ListClsDataset', 'ListSegDataset',
           'MMShapesCaptionDataset', 'MMShapesClsDataset', 'MMShapesDetDataset',
           'MMShapesSegDataset', 'MMShapesVQADataset', 'MultiModalClassBalancedDataset',
           'MultiTaskDataset', 'MultiTaskSampler', 'RepeatFactorSampler', 'TaskBatchSampler',
           'VQAv2Dataset', 'WordLevelTokenizer', 'build_tokenizer',
           # deprecated aliases, removed in the next release
           'CocoMultiModalDataset', 'MultiModalClsDataset', 'RefSegDataset',
           'SegMultiModalDataset']
