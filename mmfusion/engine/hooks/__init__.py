from .bad_sample import BadSampleReportHook
from .progress import EvalProgressHook
from .reproducibility import EpochSeedHook, SaveVocabularyHook
from .vocabulary import VocabularyCheckHook

__all__ = ['BadSampleReportHook', 'EpochSeedHook', 'EvalProgressHook', 'SaveVocabularyHook',
           'VocabularyCheckHook']
