"""Framework-free evaluation functions (pure Python, no torch needed)."""
from .vqa import (
    build_answer_vocab,
    normalize_answer,
    process_digit_article,
    process_punctuation,
    vqa_accuracy,
    vqa_soft_scores,
)

__all__ = [
    'build_answer_vocab',
    'normalize_answer',
    'process_digit_article',
    'process_punctuation',
    'vqa_accuracy',
    'vqa_soft_scores',
]
