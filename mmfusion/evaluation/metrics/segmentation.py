"""Semantic and referring segmentation metrics for MMEngine evaluators.

* :class:`IoUMetric`: aAcc, mIoU and mAcc of semantic segmentation
  (``seg/aAcc``, ``seg/mIoU``, ``seg/mAcc``), with a per-class table;
* :class:`ReferringIoUMetric`: IoU of binary referring segmentation
  (``refseg/IoU`` cumulative, ``refseg/mIoU`` per-sample mean,
  ``refseg/Pr@0.5`` ...).

Values are in percent (the fractions of
:mod:`mmfusion.evaluation.functional.segmentation` times 100), as mmseg and
the referring-segmentation papers report them: an "mIoU of 0.6" is
``seg/mIoU == 60.0``.

Both compare each prediction with its ground truth at the original image
size, sample by sample, so the samples of a split may have different sizes:
``pred_sem_seg.data`` and ``gt_sem_seg.data`` are ``(1, H, W)`` label maps
of one size per sample (keep the annotation out of the test pipeline's
Resize, as mmseg does). ``process`` keeps only per-class pixel counts
(``(C,)`` tensors) or two numbers per sample, so memory does not grow with
the image size, and the metrics do not depend on the number of ranks.
"""
from collections.abc import Sequence
from typing import Any

import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log
from mmengine.structures import BaseDataElement
from terminaltables import AsciiTable

from mmfusion.errors import ConfigError
from mmfusion.evaluation.functional.segmentation import (
    binary_intersect_and_union,
    intersect_and_union,
    summarize,
)
from mmfusion.registry import METRICS

__all__ = ['IoUMetric', 'ReferringIoUMetric']

DEFAULT_IGNORE_INDEX = 255


def _as_dict(sample: Any, metric: str) -> dict:
    """A data sample as a dict (the Evaluator converts them already)."""
    if isinstance(sample, BaseDataElement):
        return sample.to_dict()
    if not isinstance(sample, dict):
        raise TypeError(f'{metric}: a data sample must be a dict or a data element, got '
                        f'{type(sample).__name__}')
    return sample


def _label_map(sample: dict, key: str, metric: str) -> torch.Tensor:
    """``sample[key].data`` (``(1, H, W)`` or ``(H, W)``) as an ``(H, W)`` tensor."""
    field = sample.get(key)
    if isinstance(field, BaseDataElement):
        field = field.to_dict()
    data = field.get('data') if isinstance(field, dict) else None
    if data is None:
        raise ValueError(f'{metric} needs `{key}.data` in every data sample, got a sample '
                         f'with keys {sorted(sample)} ({_describe(sample)})')
    data = torch.as_tensor(data).detach()
    if data.ndim == 3 and data.shape[0] == 1:
        data = data[0]
    if data.ndim != 2:
        raise ValueError(f'{metric}: `{key}.data` must be a (1, H, W) label map, got shape '
                         f'{tuple(data.shape)} ({_describe(sample)}); take the argmax of '
                         'the logits first')
    return data


def _pair(sample: dict, metric: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The predicted and the ground-truth label maps, checked to have one size."""
    pred = _label_map(sample, 'pred_sem_seg', metric)
    label = _label_map(sample, 'gt_sem_seg', metric)
    if pred.shape != label.shape:
        raise ValueError(
            f'{metric}: pred_sem_seg is {tuple(pred.shape)} but gt_sem_seg is '
            f'{tuple(label.shape)} ({_describe(sample)}); both must be at the original image '
            'size: resize the prediction to ori_shape and load the annotation after the '
            "test pipeline's Resize (or do not resize it)")
    return pred, label


def _describe(sample: dict) -> str:
    """Which sample this is, for error messages."""
    for key in ('img_path', 'img_id', 'image_id', 'ref_id'):
        if sample.get(key) is not None:
            return f'{key}={sample[key]!r}'
    return 'sample without img_path'


def _fmt(value: float) -> str:
    return 'n/a' if value != value else f'{value:.2f}'  # NaN check


def _check_ignore_index(ignore_index: Any, metric: str) -> None:
    if ignore_index is not None and (isinstance(ignore_index, bool)
                                     or not isinstance(ignore_index, int)):
        raise ConfigError(f'{metric}: ignore_index must be an int or None (take it from the '
                          f'dataset metainfo), got {ignore_index!r}')


@METRICS.register_module()
class IoUMetric(BaseMetric):
    """aAcc, mIoU and mAcc of semantic segmentation, in percent.

    Every sample adds its per-class pixel areas
    (:func:`~mmfusion.evaluation.functional.intersect_and_union`); the
    scores come from the areas summed over the split
    (:func:`~mmfusion.evaluation.functional.summarize`), as in mmseg:

    * ``aAcc``: correctly labelled scored pixels / scored pixels;
    * ``mIoU``: mean over classes of intersection / union;
    * ``mAcc``: mean over classes of intersection / ground-truth area.

    A class absent from both the ground truth and the predictions of the
    whole split has an undefined (NaN) IoU, and a class absent from the
    ground truth an undefined accuracy; undefined values are left out of
    the means (mmseg's ``nanmean``) and shown as 'n/a' in the table.
    Pixels whose ground truth is ``ignore_index`` are not scored.

    Each data sample needs ``pred_sem_seg.data`` and ``gt_sem_seg.data``:
    ``(1, H, W)`` class indices of the same size (the original image size).

    Returned metrics (prefix ``seg/``): ``aAcc``, ``mIoU``, ``mAcc``, in
    percent (``seg/mIoU == 60.0`` is an mIoU of 0.6), not rounded (the table
    shows 2 decimals). A per-class table (class, IoU, Acc) is logged.

    Args:
        num_classes (int, optional): Number of classes; ``None`` uses the
            length of the dataset metainfo ``classes``.
        ignore_index (int, optional): Ground-truth value of unscored pixels;
            ``None`` uses the dataset metainfo ``ignore_index``, else 255.
        classwise (bool): Log the per-class table. Defaults to True.
        collect_device (str): Device used to collect results across ranks.
        prefix (str, optional): ``None`` uses 'seg'.
    """

    default_prefix: str | None = 'seg'

    def __init__(self, num_classes: int | None = None, ignore_index: int | None = None,
                 classwise: bool = True, collect_device: str = 'cpu',
                 prefix: str | None = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if num_classes is not None and (isinstance(num_classes, bool)
                                        or not isinstance(num_classes, int)
                                        or num_classes < 1):
            raise ConfigError(f'IoUMetric: num_classes must be a positive int or None (take '
                              f'it from the dataset classes), got {num_classes!r}')
        _check_ignore_index(ignore_index, 'IoUMetric')
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.classwise = classwise

    def _resolved_ignore_index(self) -> int:
        if self.ignore_index is not None:
            return self.ignore_index
        return int((self.dataset_meta or {}).get('ignore_index', DEFAULT_IGNORE_INDEX))

    def _resolved_num_classes(self) -> int:
        classes = (self.dataset_meta or {}).get('classes')
        if self.num_classes is not None:
            if classes is not None and len(classes) != self.num_classes:
                raise ConfigError(f'IoUMetric: num_classes={self.num_classes} but the dataset '
                                  f'metainfo has {len(classes)} classes')
            return self.num_classes
        if classes is None:
            raise ConfigError('IoUMetric cannot tell the number of classes: set num_classes '
                              'or give the dataset a metainfo `classes`')
        return len(classes)

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        """Keep the four ``(C,)`` pixel areas of every sample."""
        num_classes = self._resolved_num_classes()
        ignore_index = self._resolved_ignore_index()
        for sample in data_samples:
            sample = _as_dict(sample, 'IoUMetric')
            pred, label = _pair(sample, 'IoUMetric')
            try:
                areas = intersect_and_union(pred, label, num_classes, ignore_index)
            except ValueError as err:
                raise ValueError(f'IoUMetric ({_describe(sample)}): {err}') from None
            self.results.append(areas)

    def compute_metrics(self, results: list) -> dict[str, float]:
        """aAcc, mIoU and mAcc in percent over all samples."""
        if not results:
            raise ValueError('IoUMetric received no samples to evaluate')
        totals = [torch.stack([r[i] for r in results]).sum(0) for i in range(4)]
        scores = summarize(*totals)
        metrics = {key: 100.0 * scores[key] for key in ('aAcc', 'mIoU', 'mAcc')}
        if self.classwise:
            num_classes = totals[0].numel()
            classes = (self.dataset_meta or {}).get('classes') or range(num_classes)
            rows = [['class', 'IoU', 'Acc']]
            for name, iou, acc in zip(classes, scores['IoU'].tolist(), scores['Acc'].tolist()):
                rows.append([str(name), _fmt(100.0 * iou), _fmt(100.0 * acc)])
            rows.append(['mean', _fmt(metrics['mIoU']), _fmt(metrics['mAcc'])])
            table = AsciiTable(rows, title=f'Semantic segmentation ({len(results)} samples, '
                                           f'aAcc {_fmt(metrics["aAcc"])})')
            table.inner_footing_row_border = True
            print_log('\n' + table.table, logger='current')
        return metrics


@METRICS.register_module()
class ReferringIoUMetric(BaseMetric):
    """IoU of binary referring segmentation (text -> mask), in percent.

    Each sample's prediction and ground truth are binary masks
    (``pred_sem_seg.data``, ``gt_sem_seg.data``: ``(1, H, W)``, 1 =
    foreground; ground-truth pixels equal to ``ignore_index`` are not
    scored). With ``I_i`` and ``U_i`` the foreground intersection and union
    of sample ``i``, the metrics follow the referring-segmentation
    literature (e.g. LAVT, CRIS):

    * ``IoU``: cumulative (overall) IoU ``sum_i I_i / sum_i U_i``, which
      favours large objects;
    * ``mIoU``: mean over samples of ``I_i / U_i``;
    * ``Pr@t``: the share of samples with ``I_i / U_i >= t`` (LAVT's rule),
      for every threshold ``t`` in ``thresholds``.

    A sample whose prediction and ground truth are both empty (``U_i = 0``)
    is a perfect answer: its IoU is 1 (the generalised-referring convention;
    classic datasets have no empty targets); when every union is 0 the
    cumulative ``IoU`` is 100 as well.

    Returned metrics (prefix ``refseg/``): ``IoU``, ``mIoU`` and ``Pr@{t}``
    (e.g. ``refseg/Pr@0.5``), in percent. A table is logged.

    Args:
        thresholds (Sequence[float]): IoU thresholds of the precision
            scores, in (0, 1]. Defaults to (0.5, 0.6, 0.7, 0.8, 0.9).
        ignore_index (int, optional): Ground-truth value of unscored pixels;
            ``None`` uses the dataset metainfo ``ignore_index``, else 255.
        collect_device (str): Device used to collect results across ranks.
        prefix (str, optional): ``None`` uses 'refseg'.
    """

    default_prefix: str | None = 'refseg'

    def __init__(self, thresholds: Sequence[float] = (0.5, 0.6, 0.7, 0.8, 0.9),
                 ignore_index: int | None = None, collect_device: str = 'cpu',
                 prefix: str | None = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if isinstance(thresholds, (int, float)):
            thresholds = (thresholds, )
        thresholds = tuple(thresholds)
        if any(isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 < t <= 1
               for t in thresholds):
            raise ConfigError(f'ReferringIoUMetric: thresholds must be numbers in (0, 1], got '
                              f'{thresholds!r}')
        _check_ignore_index(ignore_index, 'ReferringIoUMetric')
        self.thresholds = tuple(dict.fromkeys(float(t) for t in thresholds))
        self.ignore_index = ignore_index

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        """Keep the foreground intersection and union of every sample."""
        ignore_index = self.ignore_index
        if ignore_index is None:
            ignore_index = int((self.dataset_meta or {}).get('ignore_index',
                                                             DEFAULT_IGNORE_INDEX))
        for sample in data_samples:
            sample = _as_dict(sample, 'ReferringIoUMetric')
            pred, label = _pair(sample, 'ReferringIoUMetric')
            try:
                inter, union = binary_intersect_and_union(pred, label, ignore_index)
            except ValueError as err:
                raise ValueError(f'ReferringIoUMetric ({_describe(sample)}): {err}') from None
            self.results.append((inter, union))

    def compute_metrics(self, results: list) -> dict[str, float]:
        """Cumulative IoU, mean IoU and precision at the thresholds, in percent."""
        if not results:
            raise ValueError('ReferringIoUMetric received no samples to evaluate')
        inter = torch.tensor([r[0] for r in results], dtype=torch.float64)
        union = torch.tensor([r[1] for r in results], dtype=torch.float64)
        ious = torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))
        total_union = float(union.sum())
        metrics = {
            'IoU': 100.0 * (float(inter.sum()) / total_union if total_union > 0 else 1.0),
            'mIoU': 100.0 * float(ious.mean()),
        }
        for t in self.thresholds:
            metrics[f'Pr@{t:g}'] = 100.0 * float((ious >= t).double().mean())
        rows = [['metric', 'value (%)']] + [[k, _fmt(v)] for k, v in metrics.items()]
        print_log('\n' + AsciiTable(rows, title=f'Referring segmentation ({len(results)} '
                                                f'samples)').table, logger='current')
        return metrics
