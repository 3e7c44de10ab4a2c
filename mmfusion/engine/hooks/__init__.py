from .adversarial import AdversarialTrainingHook
from .bad_sample import BadSampleReportHook
from .modality_balance import OGMGEHook
from .progress import EvalProgressHook
from .reproducibility import EpochSeedHook, SaveVocabularyHook
from .vocabulary import VocabularyCheckHook

__all__ = ['AdversarialTrainingHook',
           'BadSampleReportHook', 'EpochSeedHook', 'EvalProgressHook', 'OGMGEHook',
           'SaveVocabularyHook', 'VocabularyCheckHook']
