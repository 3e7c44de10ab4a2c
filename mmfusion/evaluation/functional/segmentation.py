"""Semantic and referring segmentation scores on label maps.

Semantic segmentation is scored the way mmseg's ``IoUMetric`` does: every
sample contributes four per-class pixel counts (areas),
:func:`intersect_and_union`; the areas are summed over the whole split and
:func:`summarize` turns the totals into aAcc, mIoU and mAcc. Summing areas
first (instead of averaging per-image scores) makes large and small images
weigh by their pixels, as in the Pascal VOC / Cityscapes / ADE20K protocol.

Undefined classes are NaN and left out of the means (``nanmean``), as in
mmseg: the IoU of a class is NaN when the class is in neither the ground
truth nor the prediction (union 0); its accuracy is NaN when it is absent
from the ground truth (it may still be predicted: its IoU is then 0, so
false positives of a missing class still lower mIoU).

Referring (binary) segmentation is scored per sample with
:func:`binary_intersect_and_union`; see
:class:`mmfusion.evaluation.metrics.ReferringIoUMetric`.

All scores here are fractions in [0, 1].
"""
from typing import Dict, Tuple

import torch

__all__ = ['binary_intersect_and_union', 'intersect_and_union', 'summarize']


def _as_label_map(value, name: str) -> torch.Tensor:
    """A label map as a 1-D long CPU tensor (any shape goes in)."""
    tensor = torch.as_tensor(value).detach().cpu()
    if tensor.is_floating_point():
        if not torch.equal(tensor, tensor.round()):
            raise ValueError(f'{name} must hold class indices, got non-integer values')
    return tensor.reshape(-1).long()


def intersect_and_union(pred: torch.Tensor, label: torch.Tensor, num_classes: int,
                        ignore_index: int = 255
                        ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-class pixel areas of one prediction against its ground truth.

    Args:
        pred: Predicted class indices, any shape (e.g. ``(H, W)`` or
            ``(1, H, W)``), values in ``[0, num_classes)``.
        label: Ground-truth class indices, the same shape as ``pred``,
            values in ``[0, num_classes)`` or ``ignore_index``.
        num_classes: Number of classes ``C``.
        ignore_index: Ground-truth value of pixels that are not scored
            (their prediction is ignored too).

    Returns:
        ``(area_intersect, area_union, area_pred, area_label)``, each a
        ``(C,)`` int64 tensor: for class ``c`` the number of scored pixels
        with ``pred == label == c``, with ``pred == c or label == c``, with
        ``pred == c`` and with ``label == c``.

    Raises:
        ValueError: when the shapes differ or a value is out of range.
    """
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise ValueError(f'num_classes must be a positive int, got {num_classes!r}')
    if tuple(torch.as_tensor(pred).shape) != tuple(torch.as_tensor(label).shape):
        raise ValueError(f'pred and label must have the same shape, got '
                         f'{tuple(torch.as_tensor(pred).shape)} and '
                         f'{tuple(torch.as_tensor(label).shape)}')
    pred = _as_label_map(pred, 'pred')
    label = _as_label_map(label, 'label')
    scored = label != ignore_index
    pred, label = pred[scored], label[scored]
    for name, values in (('label', label), ('pred', pred)):
        bad = (values < 0) | (values >= num_classes)
        if bool(bad.any()):
            found = sorted(set(values[bad].unique()[:10].tolist()))
            extra = f' or ignore_index={ignore_index}' if name == 'label' else ''
            raise ValueError(f'{name} holds values {found} outside the classes [0, '
                             f'{num_classes}){extra}; check num_classes / ignore_index')
    area_pred = torch.bincount(pred, minlength=num_classes)
    area_label = torch.bincount(label, minlength=num_classes)
    area_intersect = torch.bincount(label[pred == label], minlength=num_classes)
    area_union = area_pred + area_label - area_intersect
    return area_intersect, area_union, area_pred, area_label


def summarize(total_intersect: torch.Tensor, total_union: torch.Tensor,
              total_pred: torch.Tensor, total_label: torch.Tensor) -> Dict[str, object]:
    """aAcc, mIoU, mAcc and per-class IoU/Acc from summed areas.

    Args:
        total_intersect, total_union, total_pred, total_label: ``(C,)``
            areas of :func:`intersect_and_union`, summed over samples.
            ``total_pred`` is not needed by these scores; it is taken so the
            four areas pass through together.

    Returns:
        dict with float fractions ``aAcc`` (correct scored pixels / scored
        pixels; NaN when no pixel is scored), ``mIoU`` and ``mAcc`` (NaN-mean
        over classes; NaN when every class is NaN), and ``(C,)`` float64
        tensors ``IoU`` (intersect / union, NaN when the union is 0) and
        ``Acc`` (intersect / label area, NaN when the class is absent from
        the ground truth).
    """
    del total_pred  # only the union and the label areas enter these scores
    intersect = torch.as_tensor(total_intersect).double()
    union = torch.as_tensor(total_union).double()
    label = torch.as_tensor(total_label).double()
    nan = torch.tensor(float('nan'), dtype=torch.float64)
    iou = torch.where(union > 0, intersect / union.clamp(min=1), nan)
    acc = torch.where(label > 0, intersect / label.clamp(min=1), nan)
    total = label.sum()
    return {
        'aAcc': float(intersect.sum() / total) if total > 0 else float('nan'),
        'mIoU': float(iou.nanmean()),
        'mAcc': float(acc.nanmean()),
        'IoU': iou,
        'Acc': acc,
    }


def binary_intersect_and_union(pred: torch.Tensor, label: torch.Tensor,
                               ignore_index: int = 255) -> Tuple[int, int]:
    """Foreground intersection and union of one binary mask pair.

    Args:
        pred: Predicted mask, any shape, values in {0, 1} (or bool).
        label: Ground-truth mask, the same shape, values in {0, 1} or
            ``ignore_index`` (those pixels are not scored).
        ignore_index: Ground-truth value of unscored pixels.

    Returns:
        ``(intersection, union)`` pixel counts of the foreground (value 1).
    """
    if tuple(torch.as_tensor(pred).shape) != tuple(torch.as_tensor(label).shape):
        raise ValueError(f'pred and label must have the same shape, got '
                         f'{tuple(torch.as_tensor(pred).shape)} and '
                         f'{tuple(torch.as_tensor(label).shape)}')
    pred = _as_label_map(pred, 'pred')
    label = _as_label_map(label, 'label')
    scored = label != ignore_index
    pred, label = pred[scored], label[scored]
    for name, values in (('label', label), ('pred', pred)):
        if bool(((values != 0) & (values != 1)).any()):
            found = sorted(set(values[(values != 0) & (values != 1)].unique()[:10].tolist()))
            extra = f' or ignore_index={ignore_index}' if name == 'label' else ''
            raise ValueError(f'a binary {name} mask must hold 0 (background) and 1 '
                             f'(foreground){extra}, got values {found}')
    pred, label = pred.bool(), label.bool()
    return int((pred & label).sum()), int((pred | label).sum())
