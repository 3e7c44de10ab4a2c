from .classification import Accuracy, MultiLabelMetric, SingleLabelMetric
from .vqa import VQAAccuracy

__all__ = ['Accuracy', 'MultiLabelMetric', 'SingleLabelMetric', 'VQAAccuracy']
