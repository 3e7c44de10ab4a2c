"""Classification metrics as plain functions, with scikit-learn semantics.

Every function here returns the number :mod:`sklearn.metrics` returns for
the same inputs (the tests check this to 1e-6 on random inputs, ties and
absent classes included), but needs only torch and numpy, so that evaluation
does not depend on scikit-learn. Values are fractions (accuracy 0.75, not
75); the metric classes of :mod:`mmfusion.evaluation.metrics.classification`
turn them into percent.

Conventions shared by all functions:

* inputs may be torch tensors (any device, they are moved to the CPU),
  numpy arrays or nested sequences of numbers;
* ``scores`` is a ``(N, C)`` array of class scores (probabilities, logits or
  any other monotonic score; only their order matters, except for the
  multi-label threshold), ``N`` samples and ``C`` classes;
* single-label targets (``labels``, ``target``) are ``(N,)`` class indices in
  ``[0, C)``; multi-label targets are ``(N, C)`` 0/1 indicators;
* wherever sklearn takes ``labels=range(num_classes)``, classes absent from
  both the predictions and the target are *kept* (they count as 0 in macro
  averages, as sklearn with ``zero_division=0``);
* a division by zero gives 0, as sklearn's ``zero_division=0``;
* scores containing NaN, empty inputs and inconsistent shapes raise a
  ``ValueError`` naming the argument and the expected shape.

Public functions:

* :func:`topk_accuracy`: ``top_k_accuracy_score``;
* :func:`confusion_matrix`: ``confusion_matrix`` (rows: target, columns:
  prediction);
* :func:`precision_recall_f1`: ``precision_recall_fscore_support`` for
  single-label predictions;
* :func:`matthews_corrcoef`: multiclass ``matthews_corrcoef``;
* :func:`roc_auc`: ``roc_auc_score`` (binary, one-vs-rest multiclass and
  multi-label);
* :func:`average_precision`, :func:`multilabel_map`:
  ``average_precision_score`` per class and its macro mean;
* :func:`multilabel_precision_recall_f1`: ``precision_recall_fscore_support``
  on multi-label predictions obtained by thresholding scores.
"""
import math
from collections.abc import Sequence

import numpy as np
import torch

__all__ = [
    'average_precision',
    'confusion_matrix',
    'matthews_corrcoef',
    'multilabel_map',
    'multilabel_precision_recall_f1',
    'precision_recall_f1',
    'roc_auc',
    'topk_accuracy',
]

ArrayLike = torch.Tensor | np.ndarray | Sequence
Result = float | torch.Tensor

SINGLE_LABEL_AVERAGES = ('macro', 'micro', None)
MULTI_LABEL_AVERAGES = ('macro', 'micro', 'samples', None)


# ---------------------------------------------------------------------------
# Input checking
# ---------------------------------------------------------------------------

def _as_tensor(value: ArrayLike, name: str) -> torch.Tensor:
    """Any array-like as a CPU tensor, without gradient."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            raise TypeError(f'{name} must be a numeric array, got an array of dtype object')
        # as_tensor refuses negative strides (e.g. arr[::-1]).
        return torch.as_tensor(np.ascontiguousarray(value))
    try:
        return torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(f'{name} must be a tensor, a numpy array or a (nested) sequence of '
                        f'numbers, got {type(value).__name__}: {err}') from err


def _shape(tensor: torch.Tensor) -> tuple:
    return tuple(tensor.shape)


def _check_scores(scores: ArrayLike, name: str = 'scores', ndim: int = 2) -> torch.Tensor:
    """Scores as a float64 tensor of ``ndim`` dims with at least one sample."""
    tensor = _as_tensor(scores, name)
    expected = '(N, C)' if ndim == 2 else '(N,)'
    if tensor.ndim != ndim:
        raise ValueError(f'{name} must have shape {expected}, got shape {_shape(tensor)}')
    if tensor.dtype == torch.bool or tensor.is_complex():
        raise ValueError(f'{name} must hold real numbers, got dtype {tensor.dtype}')
    if tensor.shape[0] == 0:
        raise ValueError(f'{name} is empty (shape {_shape(tensor)}): there is no sample to '
                         'evaluate')
    if ndim == 2 and tensor.shape[1] == 0:
        raise ValueError(f'{name} has no class (shape {_shape(tensor)})')
    tensor = tensor.double()
    if torch.isnan(tensor).any():
        raise ValueError(f'{name} contains NaN')
    return tensor


def _check_labels(labels: ArrayLike, name: str, num: int, num_classes: int) -> torch.Tensor:
    """Class indices as an int64 tensor of shape ``(num,)`` in ``[0, num_classes)``."""
    tensor = _as_tensor(labels, name)
    if tensor.ndim != 1 or tensor.shape[0] != num:
        raise ValueError(f'{name} must have shape (N,) = ({num},), one class index per '
                         f'sample, got shape {_shape(tensor)}')
    return _integral(tensor, name, 0, num_classes, f'[0, {num_classes})')


def _integral(tensor: torch.Tensor, name: str, low: int, high: int,
              expected: str) -> torch.Tensor:
    """``tensor`` as int64, checking that its values are integers in [low, high)."""
    if tensor.is_complex():
        raise ValueError(f'{name} must hold integers, got dtype {tensor.dtype}')
    if tensor.is_floating_point():
        if not torch.equal(tensor, tensor.round()):
            bad = tensor[tensor != tensor.round()][0].item()
            raise ValueError(f'{name} must hold integers, got {bad}')
    tensor = tensor.long()
    if tensor.numel():
        bad = tensor[(tensor < low) | (tensor >= high)]
        if bad.numel():
            raise ValueError(f'{name} must hold values in {expected}, got {bad[0].item()}')
    return tensor


def _check_indicator(target: ArrayLike, name: str, shape: tuple) -> torch.Tensor:
    """A multi-label 0/1 indicator of the given shape, as a bool tensor."""
    tensor = _as_tensor(target, name)
    if _shape(tensor) != tuple(shape):
        raise ValueError(f'{name} must be a 0/1 indicator of shape (N, C) = {tuple(shape)} '
                         f'like the scores, got shape {_shape(tensor)}')
    return _integral(tensor, name, 0, 2, '{0, 1}').bool()


def _check_num_classes(num_classes: int | None, name: str = 'num_classes') -> int:
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)):
        raise TypeError(f'{name} must be an int, got {type(num_classes).__name__}: '
                        f'{num_classes!r}')
    if num_classes < 1:
        raise ValueError(f'{name} must be >= 1, got {num_classes}')
    return int(num_classes)


def _check_average(average: str | None, options: tuple) -> None:
    if average not in options:
        raise ValueError(f'average must be one of {options}, got {average!r}')


def _pred_and_target(pred: ArrayLike, target: ArrayLike,
                     num_classes: int | None) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Predicted labels, target labels and number of classes of a single-label task.

    ``pred`` is either ``(N,)`` predicted class indices (``num_classes`` is
    then required) or ``(N, C)`` scores, turned into labels by ``argmax``
    (the first of tied maxima, like ``numpy.argmax``).
    """
    pred_t = _as_tensor(pred, 'pred')
    if pred_t.ndim == 2:
        scores = _check_scores(pred_t, 'pred')
        if num_classes is not None and _check_num_classes(num_classes) != scores.shape[1]:
            raise ValueError(f'pred holds scores of {scores.shape[1]} classes (shape '
                             f'{_shape(scores)}) but num_classes is {num_classes}')
        num_classes = scores.shape[1]
        pred_t = scores.argmax(dim=1)
    elif pred_t.ndim == 1:
        if num_classes is None:
            raise ValueError('num_classes is required when pred holds class indices (N,); '
                             'it can only be inferred from (N, C) scores')
        num_classes = _check_num_classes(num_classes)
        if pred_t.shape[0] == 0:
            raise ValueError('pred is empty (shape (0,)): there is no sample to evaluate')
        pred_t = _integral(pred_t, 'pred', 0, num_classes, f'[0, {num_classes})')
    else:
        raise ValueError(f'pred must have shape (N,) (class indices) or (N, C) (scores), got '
                         f'shape {_shape(pred_t)}')
    target_t = _check_labels(target, 'target', pred_t.shape[0], num_classes)
    return pred_t, target_t, num_classes


def _safe_div(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """``num / den`` with 0 where ``den == 0`` (sklearn's ``zero_division=0``)."""
    return torch.where(den > 0, num / den.clamp(min=1e-300), torch.zeros_like(num))


def _prf(tp: torch.Tensor, fp: torch.Tensor, fn: torch.Tensor,
         average: str | None) -> tuple[Result, Result, Result]:
    """Precision, recall and F1 from per-class (or per-sample) counts.

    ``average``: ``None`` (one value per entry), ``'macro'``/``'samples'``
    (mean of the per-entry values) or ``'micro'`` (from the summed counts).
    F1 is ``2 tp / (2 tp + fp + fn)`` as in sklearn (equal to the harmonic
    mean of precision and recall whenever both are defined).
    """
    tp, fp, fn = tp.double(), fp.double(), fn.double()
    if average == 'micro':
        tp, fp, fn = tp.sum(), fp.sum(), fn.sum()
    precision = _safe_div(tp, tp + fp)
    recall = _safe_div(tp, tp + fn)
    f1 = _safe_div(2 * tp, 2 * tp + fp + fn)
    if average is None:
        return precision, recall, f1
    return precision.mean().item(), recall.mean().item(), f1.mean().item()


def _group_ends(sorted_scores: torch.Tensor) -> torch.Tensor:
    """Index of the last element of every run of equal values of a sorted 1-D tensor."""
    n = sorted_scores.shape[0]
    ends = torch.nonzero(sorted_scores[1:] != sorted_scores[:-1]).flatten()
    return torch.cat([ends, torch.tensor([n - 1])])


def _cumulative_counts(scores: torch.Tensor,
                       target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """True and predicted positives at every distinct threshold, highest first.

    Like sklearn's ``_binary_clf_curve``: samples are sorted by decreasing
    score and tied scores form ONE threshold, so ties never depend on the
    order of the samples.
    """
    order = torch.argsort(scores, descending=True, stable=True)
    ends = _group_ends(scores[order])
    tps = torch.cumsum(target[order].double(), 0)[ends]
    return tps, (ends + 1).double()


def _binary_auc(scores: torch.Tensor, target: torch.Tensor) -> float:
    """ROC AUC of 1-D scores against a bool target; NaN if it is undefined.

    The trapezoidal area under the ROC curve through the distinct thresholds
    (what ``roc_curve`` + ``auc`` compute), i.e. the probability that a
    positive scores above a negative, ties counting one half.
    """
    num_pos = int(target.sum())
    num_neg = target.shape[0] - num_pos
    if num_pos == 0 or num_neg == 0:
        return math.nan
    tps, num_pred = _cumulative_counts(scores, target)
    fps = num_pred - tps
    zero = torch.zeros(1, dtype=torch.float64)
    tps, fps = torch.cat([zero, tps]), torch.cat([zero, fps])
    area = ((fps[1:] - fps[:-1]) * (tps[1:] + tps[:-1])).sum().item() / 2
    return area / (num_pos * num_neg)


def _binary_ap(scores: torch.Tensor, target: torch.Tensor) -> float:
    """Average precision of 1-D scores against a bool target (0 without positives).

    ``sum_k (R_k - R_{k-1}) P_k`` over the distinct thresholds, highest
    first: step-wise, not interpolated, as ``average_precision_score``.
    """
    num_pos = int(target.sum())
    if num_pos == 0:
        # sklearn sets recall to 1 at every threshold: no recall step, AP 0.
        return 0.0
    tps, num_pred = _cumulative_counts(scores, target)
    steps = torch.diff(tps, prepend=torch.zeros(1, dtype=torch.float64))
    return (steps * tps / num_pred).sum().item() / num_pos


def _scores_and_indicator(scores: ArrayLike, target: ArrayLike, name: str = 'scores'
                          ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(N, C)`` scores and a bool ``(N, C)`` target given as indices or indicator."""
    scores_t = _check_scores(scores, name)
    num, num_classes = scores_t.shape
    target_t = _as_tensor(target, 'target')
    if target_t.ndim == 1:
        labels = _check_labels(target_t, 'target', num, num_classes)
        indicator = torch.zeros(num, num_classes, dtype=torch.bool)
        indicator[torch.arange(num), labels] = True
        return scores_t, indicator
    if target_t.ndim == 2:
        return scores_t, _check_indicator(target_t, 'target', scores_t.shape)
    raise ValueError(f'target must have shape (N,) = ({num},) (class indices) or (N, C) = '
                     f'{_shape(scores_t)} (0/1 indicator), got shape {_shape(target_t)}')


def _binary_inputs(scores: ArrayLike, target: ArrayLike) -> tuple[torch.Tensor, torch.Tensor]:
    """1-D scores and a 1-D 0/1 target of the same length, as float64 and bool."""
    scores_t = _check_scores(scores, 'scores', ndim=1)
    target_t = _as_tensor(target, 'target')
    if _shape(target_t) != _shape(scores_t):
        raise ValueError(f'with 1-D scores (binary task) target must be a 0/1 array of shape '
                         f'(N,) = {_shape(scores_t)}, got shape {_shape(target_t)}')
    return scores_t, _integral(target_t, 'target', 0, 2, '{0, 1}').bool()


# ---------------------------------------------------------------------------
# Single-label metrics
# ---------------------------------------------------------------------------

def topk_accuracy(scores: ArrayLike, labels: ArrayLike,
                  topk: int | Sequence[int] = (1,)) -> float | tuple[float, ...]:
    """Top-k accuracy, as ``sklearn.metrics.top_k_accuracy_score``.

    A sample is correct at ``k`` if its true class is among the ``k`` classes
    of highest score. Tied scores are ordered as sklearn orders them: the
    class with the HIGHER index first (so with all scores equal, top-1 picks
    the last class). ``k >= C`` gives 1.0, as in sklearn.

    Args:
        scores: ``(N, C)`` class scores.
        labels: ``(N,)`` true class indices in ``[0, C)``.
        topk: One ``k`` or a sequence of them.

    Returns:
        float or tuple[float]: The accuracy in [0, 1] (one per ``k`` if
        ``topk`` is a sequence).
    """
    scores_t = _check_scores(scores)
    num, num_classes = scores_t.shape
    labels_t = _check_labels(labels, 'labels', num, num_classes)
    ks = (topk,) if isinstance(topk, (int, np.integer)) else tuple(topk)
    if not ks:
        raise ValueError('topk is empty')
    for k in ks:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f'every k of topk must be a positive int, got {k!r}')
    true_scores = scores_t.gather(1, labels_t[:, None])
    higher_index = torch.arange(num_classes)[None, :] > labels_t[:, None]
    # 0-based position of the true class in sklearn's order.
    rank = ((scores_t > true_scores) | ((scores_t == true_scores) & higher_index)).sum(1)
    accs = tuple((rank < k).double().mean().item() for k in ks)
    return accs[0] if isinstance(topk, (int, np.integer)) else accs


def confusion_matrix(pred: ArrayLike, target: ArrayLike,
                     num_classes: int | None = None) -> torch.Tensor:
    """Confusion matrix, as ``sklearn.metrics.confusion_matrix(labels=range(C))``.

    Args:
        pred: ``(N,)`` predicted class indices, or ``(N, C)`` scores (argmax,
            first maximum on ties, is the prediction).
        target: ``(N,)`` true class indices.
        num_classes: ``C``. Required with predicted indices; optional (but
            checked) with scores.

    Returns:
        torch.Tensor: ``(C, C)`` int64, entry ``[i, j]`` counting the samples
        of true class ``i`` predicted as ``j``.
    """
    pred_t, target_t, num_classes = _pred_and_target(pred, target, num_classes)
    flat = torch.bincount(target_t * num_classes + pred_t, minlength=num_classes ** 2)
    return flat.reshape(num_classes, num_classes)


def precision_recall_f1(pred: ArrayLike, target: ArrayLike, num_classes: int | None = None,
                        average: str | None = 'macro') -> tuple[Result, Result, Result]:
    """Precision, recall and F1 of single-label predictions.

    Same numbers as ``sklearn.metrics.precision_recall_fscore_support(
    target, pred, labels=range(C), average=average, zero_division=0)``:

    * ``None``: one value per class, ``(C,)`` float64 tensors;
    * ``'macro'``: unweighted mean over ALL ``C`` classes; a class with no
      true and no predicted sample counts as 0;
    * ``'micro'``: from the counts summed over classes (equal to the
      accuracy for single-label predictions).

    Args:
        pred: ``(N,)`` predicted class indices or ``(N, C)`` scores (argmax).
        target: ``(N,)`` true class indices.
        num_classes: ``C`` (required with predicted indices).
        average: ``'macro'``, ``'micro'`` or ``None``.

    Returns:
        tuple: ``(precision, recall, f1)``, floats in [0, 1] or ``(C,)``
        tensors.
    """
    _check_average(average, SINGLE_LABEL_AVERAGES)
    cm = confusion_matrix(pred, target, num_classes)
    tp = cm.diagonal()
    return _prf(tp, cm.sum(0) - tp, cm.sum(1) - tp, average)


def matthews_corrcoef(pred: ArrayLike, target: ArrayLike,
                      num_classes: int | None = None) -> float:
    """Multiclass Matthews correlation coefficient, as sklearn's ``matthews_corrcoef``.

    Gorodkin's R_K statistic from the confusion matrix ``M``:
    ``(c s - t.p) / sqrt((s^2 - p.p) (s^2 - t.t))`` with ``c`` the trace,
    ``s`` the number of samples, ``t`` and ``p`` the true and predicted
    class counts. When a factor of the denominator is 0 (a single true or
    predicted class) the result is 0, as in sklearn.

    Returns:
        float: The MCC in [-1, 1].
    """
    cm = confusion_matrix(pred, target, num_classes).double()
    t_sum, p_sum = cm.sum(1), cm.sum(0)
    n_samples = cm.sum()
    n_correct = cm.trace()
    cov_ytyp = n_correct * n_samples - t_sum @ p_sum
    cov_ypyp = n_samples ** 2 - p_sum @ p_sum
    cov_ytyt = n_samples ** 2 - t_sum @ t_sum
    denominator = cov_ypyp * cov_ytyt
    if denominator.item() == 0:
        return 0.0
    return (cov_ytyp / denominator.sqrt()).item()


def roc_auc(scores: ArrayLike, target: ArrayLike, average: str | None = 'macro',
            multi_class: str = 'ovr', skip_undefined: bool = False) -> Result:
    """Area under the ROC curve, as ``sklearn.metrics.roc_auc_score``.

    Tied scores are grouped into one threshold and the area is trapezoidal,
    exactly as sklearn (a tie between a positive and a negative counts one
    half). Three tasks, told apart by the shapes:

    * binary: ``scores`` ``(N,)`` (score of the positive class) and
      ``target`` ``(N,)`` in {0, 1}; ``average`` is ignored and a float is
      returned;
    * multiclass, one-vs-rest: ``scores`` ``(N, C)`` and ``target`` ``(N,)``
      class indices; class ``c`` is scored with column ``c`` against "is
      ``c``". ``(N, 2)`` scores are also one-vs-rest; with softmax scores
      this equals the binary AUC of column 1. Unlike sklearn the rows need
      not sum to 1 (sklearn requires probabilities; the one-vs-rest AUCs are
      defined for any score);
    * multi-label: ``scores`` ``(N, C)`` and ``target`` ``(N, C)`` 0/1.

    Averages for ``(N, C)`` scores: ``None`` (``(C,)`` tensor), ``'macro'``
    (mean of the per-class AUCs) or ``'micro'`` (one AUC over all ``N * C``
    (score, indicator) pairs).

    Undefined classes: the AUC of a class is undefined when the target has
    no positive of it (e.g. a class absent from a single-label target) or no
    negative. sklearn then warns and returns NaN for the class, which makes
    its macro average NaN. Here, by default, a ``ValueError`` lists these
    classes. With ``skip_undefined=True`` they are skipped instead: NaN in
    the per-class result, left out of the macro mean (sklearn's per-class
    values and ``numpy.nanmean`` of them). A micro or binary AUC without
    both a positive and a negative, or a macro mean with every class
    undefined, always raises.

    Args:
        scores: ``(N,)`` or ``(N, C)`` scores.
        target: ``(N,)`` 0/1 (binary), ``(N,)`` class indices or ``(N, C)``
            0/1 indicator.
        average: ``'macro'``, ``'micro'`` or ``None``.
        multi_class: Only ``'ovr'`` (one-vs-rest) is implemented.
        skip_undefined: Skip undefined classes instead of raising.

    Returns:
        float or torch.Tensor: The AUC in [0, 1], per class for
        ``average=None``.
    """
    if multi_class != 'ovr':
        raise ValueError(f"only multi_class='ovr' (one-vs-rest) is implemented, got "
                         f'{multi_class!r}')
    _check_average(average, SINGLE_LABEL_AVERAGES)
    if _as_tensor(scores, 'scores').ndim == 1:
        value = _binary_auc(*_binary_inputs(scores, target))
        if math.isnan(value):
            raise ValueError('roc_auc is undefined: target must contain both a positive (1) '
                             'and a negative (0) sample')
        return value

    scores_t, indicator = _scores_and_indicator(scores, target)
    if average == 'micro':
        value = _binary_auc(scores_t.flatten(), indicator.flatten())
        if math.isnan(value):
            raise ValueError('micro roc_auc is undefined: target must contain both a positive '
                             'and a negative (class, sample) pair')
        return value

    aucs = torch.tensor([_binary_auc(scores_t[:, c], indicator[:, c])
                         for c in range(scores_t.shape[1])], dtype=torch.float64)
    undefined = torch.nonzero(torch.isnan(aucs)).flatten().tolist()
    if undefined and not skip_undefined:
        shown = undefined[:20] + (['...'] if len(undefined) > 20 else [])
        raise ValueError(
            f'roc_auc is undefined for {len(undefined)} class(es) {shown}: the target has no '
            'positive sample of them (class absent) or no negative one. sklearn returns NaN '
            'for them (and a NaN macro average); pass skip_undefined=True to skip them')
    if average is None:
        return aucs
    if len(undefined) == aucs.numel():
        raise ValueError('roc_auc is undefined for every class: no class has both a positive '
                         'and a negative sample in target')
    return aucs[~torch.isnan(aucs)].mean().item()


# ---------------------------------------------------------------------------
# Multi-label (and ranking) metrics
# ---------------------------------------------------------------------------

def average_precision(scores: ArrayLike, target: ArrayLike) -> Result:
    """Average precision per class, as ``average_precision_score(average=None)``.

    ``AP = sum_k (R_k - R_{k-1}) P_k`` over the distinct score thresholds
    (tied scores form one threshold): the step-wise area, NOT the
    interpolated one of VOC. A class without any positive sample gets 0
    (sklearn warns and returns 0 as well).

    Args:
        scores: ``(N, C)`` scores, or ``(N,)`` scores of a binary task.
        target: ``(N, C)`` 0/1 indicator or ``(N,)`` class indices (one-vs-
            rest); with ``(N,)`` scores, ``(N,)`` 0/1.

    Returns:
        torch.Tensor or float: ``(C,)`` float64 APs in [0, 1], or one float
        for a binary task.
    """
    if _as_tensor(scores, 'scores').ndim == 1:
        return _binary_ap(*_binary_inputs(scores, target))
    scores_t, indicator = _scores_and_indicator(scores, target)
    return torch.tensor([_binary_ap(scores_t[:, c], indicator[:, c])
                         for c in range(scores_t.shape[1])], dtype=torch.float64)


def multilabel_map(scores: ArrayLike, target: ArrayLike) -> float:
    """Mean average precision over classes (mAP).

    ``average_precision_score(target, scores, average='macro')``: the mean of
    :func:`average_precision` over ALL ``C`` classes, classes without a
    positive sample counting as 0 like in sklearn.

    Args:
        scores: ``(N, C)`` scores.
        target: ``(N, C)`` 0/1 indicator or ``(N,)`` class indices.

    Returns:
        float: The mAP in [0, 1].
    """
    if _as_tensor(scores, 'scores').ndim != 2:
        raise ValueError(f'scores must have shape (N, C), got shape '
                         f'{_shape(_as_tensor(scores, "scores"))}')
    return average_precision(scores, target).mean().item()


def multilabel_precision_recall_f1(pred: ArrayLike, target: ArrayLike, thr: float = 0.5,
                                   average: str | None = 'macro'
                                   ) -> tuple[Result, Result, Result]:
    """Precision, recall and F1 of multi-label predictions at a threshold.

    Class ``c`` is predicted for a sample when its score is ``>= thr``
    (boolean ``pred`` is taken as the predictions themselves). The numbers
    are those of ``precision_recall_fscore_support(target, pred_binary,
    average=average, zero_division=0)``:

    * ``None``: per class, ``(C,)`` float64 tensors;
    * ``'macro'``: mean over all ``C`` classes;
    * ``'micro'``: from the counts summed over classes and samples;
    * ``'samples'``: per sample over its labels, then mean over samples (a
      sample with no true and no predicted label scores 0).

    Args:
        pred: ``(N, C)`` scores, or a bool ``(N, C)`` prediction.
        target: ``(N, C)`` 0/1 indicator.
        thr: Score threshold.
        average: ``'macro'``, ``'micro'``, ``'samples'`` or ``None``.

    Returns:
        tuple: ``(precision, recall, f1)``, floats in [0, 1] or ``(C,)``
        tensors.
    """
    _check_average(average, MULTI_LABEL_AVERAGES)
    pred_t = _as_tensor(pred, 'pred')
    if pred_t.dtype == torch.bool:
        if pred_t.ndim != 2 or pred_t.shape[0] == 0:
            raise ValueError(f'pred must have shape (N, C) with N > 0, got shape '
                             f'{_shape(pred_t)}')
        positive = pred_t
    else:
        positive = _check_scores(pred_t, 'pred') >= thr
    truth = _check_indicator(target, 'target', positive.shape)
    dim = 1 if average == 'samples' else 0
    tp = (positive & truth).sum(dim)
    fp = (positive & ~truth).sum(dim)
    fn = (~positive & truth).sum(dim)
    return _prf(tp, fp, fn, average)
