from .inferencer import MultiModalInferencer
from .model import init_model
from .vocabulary import find_vocabulary_slots, resolve_vocabularies, use_built_train_set

__all__ = ['MultiModalInferencer', 'init_model', 'find_vocabulary_slots', 'resolve_vocabularies',
           'use_built_train_set']
