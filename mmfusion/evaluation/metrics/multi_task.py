"""One evaluation for several tasks: each task's metrics, prefixed by the task."""
from typing import Any, Dict, List, Optional, Sequence, Union

from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from mmfusion.errors import ConfigError
from mmfusion.registry import METRICS


@METRICS.register_module()
class MultiTaskMetric(BaseMetric):
    """Route each data sample to the metrics of its task; prefix the results.

    Args:
        task_metrics: task name -> a metric config, or a list of them, e.g.
            ``dict(vqa=dict(type='VQAAccuracy'), itm=[dict(type='Accuracy')])``.
        collect_device: as for any MMEngine metric (used by the task metrics).

    ``process`` reads the task of every data sample from its ``task``
    metainfo (set by :class:`~mmfusion.datasets.MultiTaskDataset`) and hands
    the sample to that task's metrics. ``evaluate`` returns every task
    metric's results under ``<task>/``: ``vqa/vqa/acc``,
    ``itm/accuracy/top1``, ``ml/multi-label/mAP``. Each task metric gets its
    own task's dataset metainfo (``classes`` ...) and, in distributed
    evaluation, its own task's size for dropping the padded samples.
    """

    def __init__(self, task_metrics: Dict[str, Union[dict, List[dict]]],
                 collect_device: str = 'cpu') -> None:
        super().__init__(collect_device=collect_device)
        if not isinstance(task_metrics, dict) or not task_metrics:
            raise ConfigError('MultiTaskMetric.task_metrics must be a non-empty dict of task -> '
                              f'metric config(s), got {task_metrics!r}')
        self.metrics: Dict[str, List[BaseMetric]] = {}
        for task, cfgs in task_metrics.items():
            cfgs = cfgs if isinstance(cfgs, (list, tuple)) else [cfgs]
            built = []
            for cfg in cfgs:
                if isinstance(cfg, dict):
                    cfg = dict(cfg)
                    cfg.setdefault('collect_device', collect_device)
                    cfg = METRICS.build(cfg)
                built.append(cfg)
            self.metrics[task] = built

    @BaseMetric.dataset_meta.setter
    def dataset_meta(self, dataset_meta: Optional[dict]) -> None:
        self._dataset_meta = dataset_meta
        meta = dataset_meta or {}
        tasks = meta.get('tasks')
        if tasks is not None:
            unknown = sorted(set(self.metrics) - set(tasks))
            if unknown:
                raise ConfigError(f'val_evaluator.task_metrics names tasks {unknown} that the '
                                  f'MultiTaskDataset does not have (its tasks: {list(tasks)})')
        per_task = meta.get('task_metainfo') or {}
        for task, metrics in self.metrics.items():
            for metric in metrics:
                metric.dataset_meta = per_task.get(task, dataset_meta)

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        """Hand each sample to its task's metrics (one call per task present)."""
        by_task: Dict[str, List[dict]] = {}
        for sample in data_samples:
            get = sample.get if isinstance(sample, dict) else sample.metainfo.get
            task = get('task')
            if task is None:
                raise ConfigError('MultiTaskMetric: a data sample has no "task" metainfo; '
                                  'evaluate on a MultiTaskDataset')
            if task not in self.metrics:
                raise ConfigError(f'MultiTaskMetric: data samples of task {task!r} but '
                                  f'val_evaluator.task_metrics covers only {sorted(self.metrics)}')
            by_task.setdefault(task, []).append(sample)
        for task, samples in by_task.items():
            for metric in self.metrics[task]:
                metric.process(data_batch, samples)

    def compute_metrics(self, results: list) -> dict:
        # evaluate() is overridden: each task metric collects its own results
        raise NotImplementedError

    def evaluate(self, size: int) -> dict:
        """Every task metric's results, keys prefixed with ``<task>/``."""
        sizes = (self.dataset_meta or {}).get('task_sizes') or {}
        out = {}
        for task, metrics in self.metrics.items():
            for metric in metrics:
                if not metric.results and task not in sizes:
                    print_log(f'MultiTaskMetric: no samples of task {task!r} were evaluated',
                              logger='current', level=30)
                    continue
                task_size = sizes.get(task, len(metric.results))
                for key, value in metric.evaluate(task_size).items():
                    out[f'{task}/{key}'] = value
        return out


__all__ = ['MultiTaskMetric']
