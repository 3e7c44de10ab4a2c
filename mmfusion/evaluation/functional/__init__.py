"""Evaluation functions on plain tensors and lists, free of the Runner."""
from .classification import (
    average_precision,
    confusion_matrix,
    matthews_corrcoef,
    multilabel_map,
    multilabel_precision_recall_f1,
    precision_recall_f1,
    roc_auc,
    topk_accuracy,
)
from .retrieval import recall_at_k, retrieval_ranks, retrieval_recall
from .segmentation import binary_intersect_and_union, intersect_and_union, summarize
from .vqa import (
    build_answer_vocab,
    normalize_answer,
    process_digit_article,
    process_punctuation,
    vqa_accuracy,
    vqa_soft_scores,
)

__all__ = [
    'average_precision',
    'binary_intersect_and_union',
    'build_answer_vocab',
    'confusion_matrix',
    'intersect_and_union',
    'matthews_corrcoef',
    'multilabel_map',
    'multilabel_precision_recall_f1',
    'normalize_answer',
    'precision_recall_f1',
    'process_digit_article',
    'process_punctuation',
    'recall_at_k',
    'retrieval_ranks',
    'retrieval_recall',
    'roc_auc',
    'summarize',
    'topk_accuracy',
    'vqa_accuracy',
    'vqa_soft_scores',
]
