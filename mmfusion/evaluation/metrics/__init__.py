from .vqa import VQAAccuracy

__all__ = ['VQAAccuracy']
