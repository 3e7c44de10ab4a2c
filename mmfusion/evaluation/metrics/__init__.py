from .classification import Accuracy, MultiLabelMetric, SingleLabelMetric
from .coco import CocoMetric
from .multi_task import MultiTaskMetric
from .retrieval import RetrievalRecall
from .segmentation import IoUMetric, ReferringIoUMetric
from .vqa import VQAAccuracy

__all__ = ['Accuracy', 'CocoMetric', 'IoUMetric', 'MultiLabelMetric', 'MultiTaskMetric',
           'ReferringIoUMetric', 'RetrievalRecall', 'SingleLabelMetric', 'VQAAccuracy']
