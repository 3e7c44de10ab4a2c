from .classification import Accuracy, MultiLabelMetric, SingleLabelMetric
from .coco import CocoMetric
from .segmentation import IoUMetric, ReferringIoUMetric
from .vqa import VQAAccuracy

__all__ = ['Accuracy', 'CocoMetric', 'IoUMetric', 'MultiLabelMetric', 'ReferringIoUMetric',
           'SingleLabelMetric', 'VQAAccuracy']
