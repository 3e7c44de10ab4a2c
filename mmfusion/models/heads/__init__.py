from .vqa_head import VQAHead, load_answer_vocab

__all__ = ['VQAHead', 'load_answer_vocab']
