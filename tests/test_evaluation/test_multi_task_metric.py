"""MultiTaskMetric: one evaluation, each task's metrics under its name."""
import pytest
import torch
from mmengine.evaluator import Evaluator

from mmfusion.errors import ConfigError
from mmfusion.structures import MultiModalDataSample
from mmfusion.utils import register_all_modules

register_all_modules()


def sample(task, label, pred):
    s = MultiModalDataSample(metainfo=dict(task=task))
    s.gt_label = torch.tensor([label])
    s.pred_score = torch.nn.functional.one_hot(torch.tensor(pred), 2).float()
    s.pred_label = torch.tensor([pred])
    return s


def test_routes_by_task_and_prefixes():
    evaluator = Evaluator([dict(type='MultiTaskMetric', task_metrics=dict(
        a=dict(type='Accuracy'), b=[dict(type='Accuracy', prefix='acc')]))])
    evaluator.dataset_meta = dict(tasks=['a', 'b'], task_sizes=dict(a=4, b=2),
                                  task_metainfo=dict(a=dict(classes=('x', 'y')), b={}))
    # a: 3 of 4 right; b: 0 of 2 right; mixed in one call
    evaluator.process([sample('a', 0, 0), sample('b', 1, 0), sample('a', 1, 1)])
    evaluator.process([sample('a', 0, 1), sample('b', 0, 1), sample('a', 1, 1)])
    results = evaluator.evaluate(6)
    assert results['a/accuracy/top1'] == pytest.approx(75.0)
    assert results['b/acc/top1'] == pytest.approx(0.0)
    metric = evaluator.metrics[0]
    assert metric.metrics['a'][0].dataset_meta == dict(classes=('x', 'y'))


def test_bad_task_routing():
    evaluator = Evaluator([dict(type='MultiTaskMetric',
                                task_metrics=dict(a=dict(type='Accuracy')))])
    with pytest.raises(ConfigError, match=r"covers only \['a'\]"):
        evaluator.process([sample('b', 0, 0)])
    with pytest.raises(ConfigError, match='no "task" metainfo'):
        evaluator.process([MultiModalDataSample()])
    with pytest.raises(ConfigError, match=r"names tasks \['a'\]"):
        evaluator.dataset_meta = dict(tasks=['x'])
