from .base import BaseMultiModalModel
from .classifier import MultiModalClassifier
from .dense import MultiModalDenseModel
from .distiller import KnowledgeDistiller
from .dual_encoder import DualEncoder
from .multi_task import MultiTaskModel
from .zero_shot import ZeroShotClassifier, build_zero_shot_classifier

__all__ = ['BaseMultiModalModel', 'DualEncoder', 'KnowledgeDistiller', 'MultiModalClassifier',
           'MultiModalDenseModel', 'MultiTaskModel', 'ZeroShotClassifier',
           'build_zero_shot_classifier']
