from .bad_sample import BadSampleReportHook
from .reproducibility import EpochSeedHook, SaveVocabularyHook

__all__ = ['BadSampleReportHook', 'EpochSeedHook', 'SaveVocabularyHook']
