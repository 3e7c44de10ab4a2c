"""Single-label and multi-label classification metrics for MMEngine evaluators.

Three metrics, named like mmpretrain's:

* :class:`Accuracy`: top-k accuracy (``accuracy/top1``, ``accuracy/top5``);
* :class:`SingleLabelMetric`: precision, recall, F1-score, support, and
  optionally MCC and ROC AUC (``single-label/...``);
* :class:`MultiLabelMetric`: mAP and precision, recall, F1-score at a score
  threshold (``multi-label/...``).

All values except ``support`` are in percent (the fractions of
:mod:`mmfusion.evaluation.functional.classification`, which match
scikit-learn, times 100), MCC included. ``support`` is a count.

Distributed evaluation: ``process`` keeps per-sample CPU tensors and
numbers only (scores are copied, so no batch or GPU memory is retained);
MMEngine gathers them from every rank before ``compute_metrics`` computes
the metrics over the whole dataset, so the numbers do not depend on the
number of ranks.
"""
import logging
from collections.abc import Sequence
from typing import Any

import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log
from mmengine.structures import BaseDataElement
from terminaltables import AsciiTable

from mmfusion.evaluation.functional.classification import (
    average_precision,
    confusion_matrix,
    matthews_corrcoef,
    multilabel_precision_recall_f1,
    precision_recall_f1,
    roc_auc,
    topk_accuracy,
)
from mmfusion.registry import METRICS

__all__ = ['Accuracy', 'MultiLabelMetric', 'SingleLabelMetric']


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------

def _as_dict(sample: Any) -> dict:
    """A data sample as a dict (the Evaluator converts them already)."""
    if isinstance(sample, BaseDataElement):
        # Covers direct calls with MultiModalDataSample objects.
        return sample.to_dict()
    if not isinstance(sample, dict):
        raise TypeError(f'a data sample must be a dict or a data element, got '
                        f'{type(sample).__name__}')
    return sample


def _require(sample: dict, key: str, metric: str) -> Any:
    value = sample.get(key)
    if value is None:
        raise ValueError(f'{metric} needs `{key}` in every data sample, got a sample with '
                         f'keys {sorted(sample)}')
    return value


def _score_copy(value: Any, metric: str) -> torch.Tensor:
    """A ``(C,)`` score vector as a float CPU copy (never a view of the batch)."""
    tensor = torch.as_tensor(value)
    if tensor.ndim != 1 or tensor.numel() == 0:
        raise ValueError(f'{metric}: pred_score must have shape (C,), one score per class, '
                         f'got shape {tuple(tensor.shape)}')
    if not tensor.is_floating_point():
        tensor = tensor.double()
    return tensor.detach().to('cpu', copy=True)


def _single_label(value: Any, key: str, metric: str) -> int:
    """The class index of a single-label ``gt_label``/``pred_label`` (an int or (1,))."""
    tensor = torch.as_tensor(value)
    if tensor.numel() != 1:
        raise ValueError(f'{metric} is single-label: {key} must hold exactly one class index '
                         f'(shape (1,)), got shape {tuple(tensor.shape)}; use '
                         'MultiLabelMetric for multi-label data')
    if tensor.is_floating_point() and tensor.item() != int(tensor.item()):
        raise ValueError(f'{metric}: {key} must be a class index, got {tensor.item()}')
    return int(tensor.item())


def _multilabel_target(value: Any, num_classes: int, gt_format: str) -> torch.Tensor:
    """A multi-label ``gt_label`` as a ``(C,)`` bool indicator.

    ``gt_format`` says how ``gt_label`` is written: ``'index'`` (indices of
    the positive classes, any length, duplicates ignored), ``'onehot'`` (a
    ``(C,)`` 0/1 tensor) or ``'auto'``: one-hot if the tensor has ``C``
    values all in {0, 1}, class indices otherwise. The only tensors that read
    both ways are permutations of ``[0, 1]`` with ``C == 2`` and ``[0]`` with
    ``C == 1`` (as indices they cannot repeat a class); ``'auto'`` raises on
    them rather than guess.
    """
    tensor = torch.as_tensor(value).detach().cpu().flatten()
    if tensor.is_floating_point() and not torch.equal(tensor, tensor.round()):
        raise ValueError(f'MultiLabelMetric: gt_label must hold integers, got {tensor.tolist()}')
    tensor = tensor.long()
    binary = bool(((tensor == 0) | (tensor == 1)).all())
    could_be_onehot = tensor.numel() == num_classes and binary
    in_range = bool(((tensor >= 0) & (tensor < num_classes)).all())
    could_be_index = in_range and tensor.unique().numel() == tensor.numel()
    if gt_format == 'auto':
        if could_be_onehot and could_be_index:
            raise ValueError(
                f'MultiLabelMetric: gt_label {tensor.tolist()} with {num_classes} classes reads '
                'both as class indices and as a one-hot vector; set gt_format to "index" or '
                '"onehot"')
        gt_format = 'onehot' if could_be_onehot else 'index'
    if gt_format == 'onehot':
        if not could_be_onehot:
            raise ValueError(f'MultiLabelMetric: a one-hot gt_label must have shape (C,) = '
                             f'({num_classes},) with values in {{0, 1}}, got '
                             f'{tensor.tolist()}')
        return tensor.bool()
    if not in_range:
        raise ValueError(f'MultiLabelMetric: gt_label holds class indices outside [0, '
                         f'{num_classes}) (C taken from pred_score): {tensor.tolist()}')
    onehot = torch.zeros(num_classes, dtype=torch.bool)
    onehot[tensor] = True
    return onehot


def _check_items(items: Sequence[str], allowed: tuple, metric: str) -> tuple:
    if isinstance(items, str):
        items = (items, )
    items = tuple(dict.fromkeys(items))
    if not items:
        raise ValueError(f'{metric}: items is empty; choose among {allowed}')
    for item in items:
        if item not in allowed:
            raise ValueError(f'{metric}: unknown item {item!r}; choose among {allowed}')
    return items


def _check_average(average: str | None, allowed: tuple, metric: str) -> None:
    if average not in allowed:
        raise ValueError(f'{metric}: average must be one of {allowed}, got {average!r}')


def _class_names(dataset_meta: dict | None, num_classes: int, metric: str) -> list[str]:
    """Names from ``dataset_meta['classes']``, or the class indices."""
    classes = (dataset_meta or {}).get('classes')
    if classes is None:
        return [str(i) for i in range(num_classes)]
    if len(classes) != num_classes:
        raise ValueError(f'{metric}: dataset_meta["classes"] has {len(classes)} classes but '
                         f'the predictions have {num_classes}')
    return [str(name) for name in classes]


def _suffix(average: str | None) -> str:
    """Metric-name suffix of an average: macro is the default, so it has none."""
    return '' if average == 'macro' else f'_{average}'


def _pct(value: float) -> str:
    return 'n/a' if value != value else f'{value:.2f}'  # NaN check


def _log_table(rows: list[list[str]], title: str, num_footer: int) -> None:
    table = AsciiTable(rows, title=title)
    if num_footer and len(rows) > num_footer + 1:
        table.inner_footing_row_border = True
    print_log('\n' + table.table, logger='current')


def _check_num_scores(scores: list[torch.Tensor], metric: str) -> int:
    sizes = sorted({score.numel() for score in scores})
    if len(sizes) != 1:
        raise ValueError(f'{metric}: the pred_score of the samples have different numbers of '
                         f'classes: {sizes}')
    return sizes[0]


# ---------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------

@METRICS.register_module()
class Accuracy(BaseMetric):
    """Top-k accuracy of single-label classification, in percent.

    Each data sample (a dict or a :class:`MultiModalDataSample`) must have
    ``gt_label`` (an int or LongTensor ``(1,)``) and ``pred_score`` (``(C,)``
    scores). With ``topk=(1,)`` a ``pred_label`` alone is enough. When every
    sample has ``pred_score`` the scores are used, with sklearn's
    ``top_k_accuracy_score`` tie rule (tied classes ranked higher index
    first); otherwise top-1 compares ``pred_label`` (or the argmax of
    ``pred_score``) with ``gt_label``. ``k >= C`` gives 100.

    Returned metrics: ``top{k}`` for every k (``accuracy/top1`` ...).

    Args:
        topk (int | Sequence[int]): The k values. Defaults to ``(1,)``.
        collect_device (str): Device used to collect results across ranks,
            'cpu' or 'gpu'. Defaults to 'cpu'.
        prefix (str, optional): Prefix of the metric names; ``None`` uses
            :attr:`default_prefix` ('accuracy').
    """

    default_prefix: str | None = 'accuracy'

    def __init__(self, topk: int | Sequence[int] = (1, ), collect_device: str = 'cpu',
                 prefix: str | None = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        topk = (topk, ) if isinstance(topk, int) else tuple(topk)
        if not topk or any(isinstance(k, bool) or not isinstance(k, int) or k < 1
                           for k in topk):
            raise ValueError(f'Accuracy: topk must be positive ints, got {topk!r}')
        self.topk = tuple(dict.fromkeys(topk))

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        """Keep the true label and the scores (or predicted label) of every sample."""
        for sample in data_samples:
            sample = _as_dict(sample)
            result = {'gt_label': _single_label(_require(sample, 'gt_label', 'Accuracy'),
                                                'gt_label', 'Accuracy')}
            if sample.get('pred_score') is not None:
                result['pred_score'] = _score_copy(sample['pred_score'], 'Accuracy')
            elif sample.get('pred_label') is not None:
                result['pred_label'] = _single_label(sample['pred_label'], 'pred_label',
                                                     'Accuracy')
            else:
                raise ValueError('Accuracy needs `pred_score` (or `pred_label` for top-1) in '
                                 f'every data sample, got keys {sorted(sample)}')
            self.results.append(result)

    def compute_metrics(self, results: list[dict]) -> dict[str, float]:
        """Top-k accuracies in percent."""
        if not results:
            raise ValueError('Accuracy received no samples to evaluate')
        labels = torch.tensor([r['gt_label'] for r in results])
        if all('pred_score' in r for r in results):
            scores = [r['pred_score'] for r in results]
            _check_num_scores(scores, 'Accuracy')
            accs = topk_accuracy(torch.stack(scores), labels, self.topk)
        else:
            if self.topk != (1, ):
                raise ValueError(f'Accuracy with topk={self.topk} needs `pred_score` in every '
                                 'data sample; some only have `pred_label`')
            preds = torch.tensor([
                r['pred_label'] if 'pred_label' in r else int(r['pred_score'].argmax())
                for r in results
            ])
            accs = ((preds == labels).double().mean().item(), )
        metrics = {f'top{k}': 100.0 * acc for k, acc in zip(self.topk, accs)}
        rows = [['top-k', 'accuracy (%)']] + [[name, _pct(v)] for name, v in metrics.items()]
        _log_table(rows, f'Accuracy ({len(results)} samples)', 0)
        return metrics


@METRICS.register_module()
class SingleLabelMetric(BaseMetric):
    """Precision, recall, F1-score (and support, MCC, ROC AUC) of single-label data.

    The numbers are scikit-learn's (see
    :mod:`mmfusion.evaluation.functional.classification`) times 100:
    ``precision_recall_fscore_support(labels=range(C), zero_division=0)``,
    ``matthews_corrcoef`` and one-vs-rest ``roc_auc_score``. A class absent
    from both the targets and the predictions counts as 0 in macro averages.

    Each data sample must have ``gt_label`` (an int or LongTensor ``(1,)``)
    and ``pred_label`` or ``pred_score`` (``(C,)``). The prediction is
    ``pred_label`` when present, else the argmax of ``pred_score``.
    ``'roc_auc'`` needs ``pred_score``.

    The number of classes ``C`` is ``num_classes`` if given, else the length
    of ``pred_score``, else the length of ``dataset_meta['classes']``; these
    must agree when several are known.

    Returned metrics (prefix ``single-label/``), for each item:

    * ``average='macro'``: ``precision``, ``recall``, ``f1-score``,
      ``support`` (number of samples), ``roc_auc``;
    * ``average='micro'``: the same names with ``_micro``;
    * ``average=None``: ``{item}_class{i}`` for every class ``i``;
    * ``mcc`` is one number whatever the average.

    ROC AUC of a class absent from the targets is undefined (sklearn gives
    NaN); such classes are skipped with a warning in the log: left out of
    the macro mean, no ``roc_auc_class{i}`` key, 'n/a' in the table.

    A table is logged, with one row per class (named from
    ``dataset_meta['classes']`` when available) unless ``classwise_table``
    is False.

    Args:
        items (Sequence[str]): Among 'precision', 'recall', 'f1-score',
            'support', 'mcc', 'roc_auc'. Defaults to the first three.
        average (str, optional): 'macro', 'micro' or None (per class).
        num_classes (int, optional): Number of classes.
        classwise_table (bool): Log one table row per class.
        collect_device (str): Device used to collect results across ranks.
        prefix (str, optional): ``None`` uses 'single-label'.
    """

    default_prefix: str | None = 'single-label'
    ITEMS = ('precision', 'recall', 'f1-score', 'support', 'mcc', 'roc_auc')
    AVERAGES = ('macro', 'micro', None)

    def __init__(self,
                 items: Sequence[str] = ('precision', 'recall', 'f1-score'),
                 average: str | None = 'macro',
                 num_classes: int | None = None,
                 classwise_table: bool = True,
                 collect_device: str = 'cpu',
                 prefix: str | None = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.items = _check_items(items, self.ITEMS, 'SingleLabelMetric')
        _check_average(average, self.AVERAGES, 'SingleLabelMetric')
        if num_classes is not None and (not isinstance(num_classes, int) or num_classes < 1):
            raise ValueError(f'SingleLabelMetric: num_classes must be a positive int, got '
                             f'{num_classes!r}')
        self.average = average
        self.num_classes = num_classes
        self.classwise_table = classwise_table

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        """Keep the true and predicted label (and the scores for ROC AUC)."""
        name = 'SingleLabelMetric'
        for sample in data_samples:
            sample = _as_dict(sample)
            result = {'gt_label': _single_label(_require(sample, 'gt_label', name),
                                                'gt_label', name)}
            score = sample.get('pred_score')
            if score is not None:
                score = _score_copy(score, name)
                result['num_classes'] = score.numel()
            if sample.get('pred_label') is not None:
                result['pred_label'] = _single_label(sample['pred_label'], 'pred_label', name)
            elif score is not None:
                result['pred_label'] = int(score.argmax())
            else:
                raise ValueError(f'{name} needs `pred_label` or `pred_score` in every data '
                                 f'sample, got keys {sorted(sample)}')
            if 'roc_auc' in self.items:
                if score is None:
                    raise ValueError(f"{name} with 'roc_auc' needs `pred_score` in every data "
                                     f'sample, got keys {sorted(sample)}')
                result['pred_score'] = score
            self.results.append(result)

    def _resolve_num_classes(self, results: list[dict]) -> int:
        sizes = {r['num_classes'] for r in results if 'num_classes' in r}
        if len(sizes) > 1:
            raise ValueError(f'SingleLabelMetric: the pred_score of the samples have different '
                             f'numbers of classes: {sorted(sizes)}')
        classes = (self.dataset_meta or {}).get('classes')
        known = {
            'num_classes': self.num_classes,
            'pred_score': next(iter(sizes)) if sizes else None,
            'dataset_meta["classes"]': None if classes is None else len(classes),
        }
        values = {k: v for k, v in known.items() if v is not None}
        if not values:
            raise ValueError('SingleLabelMetric cannot tell the number of classes: give '
                             'num_classes, pred_score or dataset_meta["classes"]')
        if len(set(values.values())) > 1:
            raise ValueError(f'SingleLabelMetric: inconsistent numbers of classes {values}')
        return next(iter(values.values()))

    def compute_metrics(self, results: list[dict]) -> dict[str, float]:
        """Precision, recall, F1, support, MCC and ROC AUC over all samples."""
        if not results:
            raise ValueError('SingleLabelMetric received no samples to evaluate')
        num_classes = self._resolve_num_classes(results)
        names = _class_names(self.dataset_meta, num_classes, 'SingleLabelMetric')
        target = torch.tensor([r['gt_label'] for r in results])
        pred = torch.tensor([r['pred_label'] for r in results])

        support = confusion_matrix(pred, target, num_classes).sum(1).double()
        per_class = dict(zip(('precision', 'recall', 'f1-score'),
                             precision_recall_f1(pred, target, num_classes, None)))
        per_class = {k: 100.0 * v for k, v in per_class.items()}
        per_class['support'] = support
        summary: dict[str, float] = {}
        if self.average is not None:
            summary = dict(zip(('precision', 'recall', 'f1-score'),
                               precision_recall_f1(pred, target, num_classes, self.average)))
            summary = {k: 100.0 * v for k, v in summary.items()}
            summary['support'] = float(len(results))
        if 'roc_auc' in self.items:
            scores = torch.stack([r['pred_score'] for r in results])
            aucs = 100.0 * roc_auc(scores, target, None, skip_undefined=True)
            undefined = [names[c] for c in torch.nonzero(torch.isnan(aucs)).flatten().tolist()]
            if undefined:
                print_log(f'SingleLabelMetric: ROC AUC is undefined for {len(undefined)} '
                          f'class(es) without positive sample (skipped): {undefined[:20]}',
                          logger='current', level=logging.WARNING)
            per_class['roc_auc'] = aucs
            if self.average == 'macro':
                summary['roc_auc'] = 100.0 * roc_auc(scores, target, 'macro',
                                                     skip_undefined=True)
            elif self.average == 'micro':
                summary['roc_auc'] = 100.0 * roc_auc(scores, target, 'micro')

        metrics: dict[str, float] = {}
        for item in self.items:
            if item == 'mcc':
                metrics['mcc'] = 100.0 * matthews_corrcoef(pred, target, num_classes)
            elif self.average is None:
                for c, value in enumerate(per_class[item].tolist()):
                    if value == value:  # not NaN
                        metrics[f'{item}_class{c}'] = value
            else:
                metrics[f'{item}{_suffix(self.average)}'] = summary[item]

        self._log(names, per_class, summary, metrics.get('mcc'), len(results))
        return metrics

    def _log(self, names: list[str], per_class: dict, summary: dict, mcc: float | None,
             num_samples: int) -> None:
        columns = [item for item in self.items if item != 'mcc']
        if 'support' not in columns:
            columns = ['support'] + columns

        def fmt(item: str, value: float) -> str:
            return str(int(value)) if item == 'support' else _pct(value)

        rows = [['class'] + columns]
        if self.classwise_table:
            for c, name in enumerate(names):
                rows.append([name] + [fmt(item, per_class[item][c].item()) for item in columns])
        footer = []
        if self.average is not None:
            footer.append([f'{self.average} avg'] + [fmt(item, summary[item])
                                                     for item in columns])
        if mcc is not None:
            footer.append(['MCC', _pct(mcc)] + [''] * (len(columns) - 1))
        _log_table(rows + footer, f'Single-label metrics ({num_samples} samples, %)',
                   len(footer))


@METRICS.register_module()
class MultiLabelMetric(BaseMetric):
    """mAP, and precision, recall, F1-score at a threshold, of multi-label data.

    The numbers are scikit-learn's times 100: ``average_precision_score``
    (step-wise AP; mAP is the mean over ALL classes, a class without
    positive sample counting as 0 as in sklearn, which is logged as a
    warning) and ``precision_recall_fscore_support(zero_division=0)`` of the
    predictions ``pred_score >= thr``.

    Each data sample must have ``pred_score`` (``(C,)``; it gives ``C``) and
    ``gt_label``, written either as the indices of the positive classes
    (LongTensor ``(K,)``, ``K`` may be 0) or as a ``(C,)`` 0/1 one-hot
    tensor; ``gt_format`` says which, 'auto' (default) guesses: one-hot if
    it has ``C`` values all in {0, 1}, indices otherwise. Indices cannot
    repeat a class in 'auto' mode, so only ``C <= 2`` can be ambiguous
    (``[0, 1]`` with 2 classes, ``[0]`` with 1); 'auto' raises then. A
    ``pred_label`` is ignored.

    Returned metrics (prefix ``multi-label/``):

    * ``mAP`` (always the macro mean) if ``'mAP'`` is in ``items``;
    * ``average='macro'``: ``precision``, ``recall``, ``f1-score``,
      ``support`` (number of positive labels);
    * ``average='micro'`` / ``'samples'``: the same with ``_micro`` /
      ``_samples``;
    * ``average=None``: ``{item}_class{i}`` per class, and ``AP_class{i}``.

    Args:
        thr (float): A class is predicted when its score is >= thr.
        items (Sequence[str]): Among 'precision', 'recall', 'f1-score',
            'support', 'mAP'. Defaults to all but 'support'.
        average (str, optional): 'macro', 'micro', 'samples' or None.
        gt_format (str): 'auto', 'index' or 'onehot'.
        classwise_table (bool): Log one table row per class.
        collect_device (str): Device used to collect results across ranks.
        prefix (str, optional): ``None`` uses 'multi-label'.
    """

    default_prefix: str | None = 'multi-label'
    ITEMS = ('precision', 'recall', 'f1-score', 'support', 'mAP')
    AVERAGES = ('macro', 'micro', 'samples', None)

    def __init__(self,
                 thr: float = 0.5,
                 items: Sequence[str] = ('precision', 'recall', 'f1-score', 'mAP'),
                 average: str | None = 'macro',
                 gt_format: str = 'auto',
                 classwise_table: bool = True,
                 collect_device: str = 'cpu',
                 prefix: str | None = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.items = _check_items(items, self.ITEMS, 'MultiLabelMetric')
        _check_average(average, self.AVERAGES, 'MultiLabelMetric')
        if gt_format not in ('auto', 'index', 'onehot'):
            raise ValueError(f"MultiLabelMetric: gt_format must be 'auto', 'index' or "
                             f"'onehot', got {gt_format!r}")
        self.thr = float(thr)
        self.average = average
        self.gt_format = gt_format
        self.classwise_table = classwise_table

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        """Keep the scores and the one-hot target of every sample."""
        name = 'MultiLabelMetric'
        for sample in data_samples:
            sample = _as_dict(sample)
            score = _score_copy(_require(sample, 'pred_score', name), name)
            target = _multilabel_target(_require(sample, 'gt_label', name), score.numel(),
                                        self.gt_format)
            self.results.append({'pred_score': score, 'gt_label': target})

    def compute_metrics(self, results: list[dict]) -> dict[str, float]:
        """mAP and thresholded precision, recall, F1 over all samples."""
        if not results:
            raise ValueError('MultiLabelMetric received no samples to evaluate')
        scores = [r['pred_score'] for r in results]
        num_classes = _check_num_scores(scores, 'MultiLabelMetric')
        names = _class_names(self.dataset_meta, num_classes, 'MultiLabelMetric')
        scores = torch.stack(scores)
        target = torch.stack([r['gt_label'] for r in results])

        per_class = dict(zip(('precision', 'recall', 'f1-score'),
                             multilabel_precision_recall_f1(scores, target, self.thr, None)))
        per_class = {k: 100.0 * v for k, v in per_class.items()}
        per_class['support'] = target.sum(0).double()
        summary: dict[str, float] = {}
        if self.average is not None:
            summary = dict(zip(('precision', 'recall', 'f1-score'),
                               multilabel_precision_recall_f1(scores, target, self.thr,
                                                              self.average)))
            summary = {k: 100.0 * v for k, v in summary.items()}
            summary['support'] = float(target.sum())
        metrics: dict[str, float] = {}
        if 'mAP' in self.items:
            per_class['mAP'] = 100.0 * average_precision(scores, target)
            no_positive = [names[c] for c in
                           torch.nonzero(per_class['support'] == 0).flatten().tolist()]
            if no_positive:
                print_log(f'MultiLabelMetric: {len(no_positive)} class(es) have no positive '
                          f'sample; their AP is 0 and counts in mAP (as in sklearn): '
                          f'{no_positive[:20]}', logger='current', level=logging.WARNING)
            metrics['mAP'] = per_class['mAP'].mean().item()

        for item in self.items:
            if item == 'mAP':
                if self.average is None:
                    metrics.update({f'AP_class{c}': v
                                    for c, v in enumerate(per_class['mAP'].tolist())})
            elif self.average is None:
                metrics.update({f'{item}_class{c}': v
                                for c, v in enumerate(per_class[item].tolist())})
            else:
                metrics[f'{item}{_suffix(self.average)}'] = summary[item]

        self._log(names, per_class, summary, metrics.get('mAP'), len(results))
        return metrics

    def _log(self, names: list[str], per_class: dict, summary: dict, mean_ap: float | None,
             num_samples: int) -> None:
        columns = [item for item in self.items if item != 'mAP']
        if 'support' not in columns:
            columns = ['support'] + columns
        has_ap = mean_ap is not None

        def fmt(item: str, value: float) -> str:
            return str(int(value)) if item == 'support' else _pct(value)

        rows = [['class'] + columns + (['AP'] if has_ap else [])]
        if self.classwise_table:
            for c, name in enumerate(names):
                row = [name] + [fmt(item, per_class[item][c].item()) for item in columns]
                rows.append(row + ([_pct(per_class['mAP'][c].item())] if has_ap else []))
        footer = []
        if self.average is not None:
            row = [f'{self.average} avg'] + [fmt(item, summary[item]) for item in columns]
            footer.append(row + ([_pct(mean_ap) if self.average == 'macro' else '']
                                 if has_ap else []))
        if has_ap and self.average != 'macro':
            footer.append(['mAP'] + [''] * len(columns) + [_pct(mean_ap)])
        _log_table(rows + footer,
                   f'Multi-label metrics ({num_samples} samples, thr {self.thr:g}, %)',
                   len(footer))
