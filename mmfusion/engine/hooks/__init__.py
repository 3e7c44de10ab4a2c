from .reproducibility import EpochSeedHook, SaveVocabularyHook

__all__ = ['EpochSeedHook', 'SaveVocabularyHook']
