"""Classification metrics: parity with scikit-learn, metric classes, errors.

scikit-learn is the oracle here only; the code under test does not import it.
Random inputs cover ties (discrete scores, repeated rows), classes absent
from the targets and/or the predictions, and small and odd shapes.
"""
import pickle
import warnings

import numpy as np
import pytest
import torch
from mmengine.evaluator import Evaluator
from mmengine.registry import init_default_scope
from sklearn import metrics as skm

import mmfusion.evaluation.metrics.classification as cls_metrics
from mmfusion.evaluation.functional.classification import (
    average_precision,
    confusion_matrix,
    matthews_corrcoef,
    multilabel_map,
    multilabel_precision_recall_f1,
    precision_recall_f1,
    roc_auc,
    topk_accuracy,
)
from mmfusion.evaluation.metrics.classification import (
    Accuracy,
    MultiLabelMetric,
    SingleLabelMetric,
)
from mmfusion.structures.data_sample import MultiModalDataSample

SEEDS = list(range(40))
TOL = 1e-6


@pytest.fixture(autouse=True)
def _quiet_sklearn():
    # sklearn warns on undefined metrics (k >= C, no positive sample ...).
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        yield


def close(a, b):
    a = a.numpy() if isinstance(a, torch.Tensor) else np.asarray(a, dtype=float)
    return np.allclose(a, np.asarray(b, dtype=float), atol=TOL, rtol=0, equal_nan=True)


def single_label_case(seed, min_classes=2):
    """Scores with many ties, labels and predictions with absent classes."""
    rng = np.random.default_rng(seed)
    num = int(rng.integers(2, 60))
    num_classes = int(rng.integers(min_classes, 8))
    if seed % 3 == 0:   # discrete scores: ties inside rows and columns
        scores = rng.integers(0, 3, (num, num_classes)).astype(np.float64)
    else:
        scores = rng.normal(size=(num, num_classes))
    # Targets and predictions drawn from subsets: some classes are absent.
    present = rng.choice(num_classes, size=int(rng.integers(1, num_classes + 1)),
                         replace=False)
    labels = rng.choice(present, size=num)
    preds = rng.integers(0, num_classes, num) if seed % 2 else rng.choice(present, size=num)
    return scores, labels, preds, num_classes


def probabilities(seed, num, num_classes):
    """Rows summing to 1 (sklearn requires it), drawn from a small pool so that
    columns hold exact ties."""
    rng = np.random.default_rng(seed + 1000)
    pool = rng.integers(1, 4, (max(2, num // 3), num_classes)).astype(np.float64)
    pool /= pool.sum(1, keepdims=True)
    return pool[rng.integers(0, len(pool), num)]


def all_present_labels(seed, num, num_classes):
    rng = np.random.default_rng(seed + 2000)
    labels = np.concatenate([np.arange(num_classes), rng.integers(0, num_classes, num)])
    return rng.permutation(labels)


def multilabel_case(seed):
    rng = np.random.default_rng(seed)
    num = int(rng.integers(2, 50))
    # >= 2: sklearn reads a single-column indicator as binary labels.
    num_classes = int(rng.integers(2, 8))
    if seed % 2:
        scores = rng.integers(0, 5, (num, num_classes)) / 4.0    # ties, and exactly thr
    else:
        scores = rng.random((num, num_classes))
    target = (rng.random((num, num_classes)) < rng.random(num_classes)).astype(np.int64)
    target[:, 0] = 0                        # a class without any positive
    if num_classes > 2:
        target[:, 1] = 1                    # a class without any negative
    return scores, target


# ---------------------------------------------------------------------------
# Functions vs scikit-learn
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('seed', SEEDS)
def test_topk_accuracy(seed):
    scores, labels, _, num_classes = single_label_case(seed, min_classes=3)
    ks = tuple(range(1, num_classes + 2))
    ours = topk_accuracy(scores, labels, ks)
    for k, value in zip(ks, ours):
        expected = skm.top_k_accuracy_score(labels, scores, k=k, labels=range(num_classes))
        assert close(value, expected), (k, value, expected)
    assert topk_accuracy(torch.from_numpy(scores), torch.from_numpy(labels), 1) == ours[0]


def test_topk_ties_follow_sklearn_and_binary():
    # All scores tied: sklearn ranks the higher class index first.
    scores = np.zeros((3, 4))
    assert topk_accuracy(scores, [3, 2, 0], (1, 2)) == (pytest.approx(1 / 3),
                                                        pytest.approx(2 / 3))
    # Two classes: top-1 is the higher score, ties go to class 1; top-2 is 1.
    scores = np.array([[0.2, 0.8], [0.5, 0.5], [0.5, 0.5], [0.9, 0.1]])
    assert topk_accuracy(scores, [1, 1, 0, 1], (1, 2)) == (0.5, 1.0)


@pytest.mark.parametrize('seed', SEEDS)
def test_confusion_matrix(seed):
    scores, labels, preds, num_classes = single_label_case(seed)
    expected = skm.confusion_matrix(labels, preds, labels=range(num_classes))
    assert np.array_equal(confusion_matrix(preds, labels, num_classes).numpy(), expected)
    # Scores: argmax, first maximum on ties, like numpy.
    expected = skm.confusion_matrix(labels, scores.argmax(1), labels=range(num_classes))
    assert np.array_equal(confusion_matrix(scores, labels).numpy(), expected)


@pytest.mark.parametrize('average', ['macro', 'micro', None])
@pytest.mark.parametrize('seed', SEEDS)
def test_precision_recall_f1(seed, average):
    scores, labels, preds, num_classes = single_label_case(seed)
    for pred, sk_pred in ((preds, preds), (scores, scores.argmax(1))):
        ours = precision_recall_f1(pred, labels, num_classes, average=average)
        expected = skm.precision_recall_fscore_support(
            labels, sk_pred, labels=range(num_classes), average=average,
            zero_division=0)[:3]
        for value, ref in zip(ours, expected):
            assert close(value, ref), (value, ref)
        if average is None:
            assert all(v.shape == (num_classes, ) for v in ours)
        else:
            assert all(isinstance(v, float) for v in ours)


@pytest.mark.parametrize('seed', SEEDS)
def test_matthews_corrcoef(seed):
    scores, labels, preds, num_classes = single_label_case(seed)
    assert close(matthews_corrcoef(preds, labels, num_classes),
                 skm.matthews_corrcoef(labels, preds))
    assert close(matthews_corrcoef(scores, labels), skm.matthews_corrcoef(labels,
                                                                          scores.argmax(1)))


def test_matthews_corrcoef_degenerate():
    assert matthews_corrcoef([1, 1, 1], [0, 1, 2], 3) == 0.0    # one predicted class
    assert matthews_corrcoef([0, 1, 2], [2, 2, 2], 3) == 0.0    # one true class
    assert matthews_corrcoef([0, 1, 2], [0, 1, 2], 3) == pytest.approx(1.0)
    assert matthews_corrcoef([1, 0], [0, 1], 2) == pytest.approx(-1.0)


@pytest.mark.parametrize('seed', SEEDS)
def test_roc_auc_binary(seed):
    rng = np.random.default_rng(seed)
    num = int(rng.integers(2, 80))
    scores = rng.integers(0, 4, num) / 3.0 if seed % 2 else rng.normal(size=num)
    target = rng.integers(0, 2, num)
    target[:2] = [0, 1]
    assert close(roc_auc(scores, target), skm.roc_auc_score(target, scores))


@pytest.mark.parametrize('average', ['macro', 'micro', None])
@pytest.mark.parametrize('seed', SEEDS)
def test_roc_auc_multiclass_ovr(seed, average):
    rng = np.random.default_rng(seed)
    num_classes = int(rng.integers(3, 8))
    labels = all_present_labels(seed, int(rng.integers(0, 40)), num_classes)
    probs = probabilities(seed, len(labels), num_classes)
    expected = skm.roc_auc_score(labels, probs, multi_class='ovr', average=average,
                                 labels=range(num_classes))
    assert close(roc_auc(probs, labels, average=average), expected)


@pytest.mark.parametrize('seed', SEEDS)
def test_roc_auc_two_columns_equal_binary(seed):
    labels = all_present_labels(seed, 20, 2)
    probs = probabilities(seed, len(labels), 2)
    expected = skm.roc_auc_score(labels, probs[:, 1])
    assert close(roc_auc(probs, labels), expected)
    assert close(roc_auc(probs, labels, average=None), [expected, expected])


@pytest.mark.parametrize('seed', SEEDS[:20])
def test_roc_auc_absent_class(seed):
    rng = np.random.default_rng(seed)
    num_classes = int(rng.integers(3, 8))
    absent = int(rng.integers(0, num_classes))
    labels = all_present_labels(seed, 30, num_classes)
    labels = np.where(labels == absent, (absent + 1) % num_classes, labels)
    probs = probabilities(seed, len(labels), num_classes)
    with pytest.raises(ValueError, match=rf'undefined for 1 class\(es\) \[{absent}\]'):
        roc_auc(probs, labels)
    # sklearn warns and gives NaN for the class (and a NaN macro average).
    per_class = skm.roc_auc_score(labels, probs, multi_class='ovr', average=None,
                                  labels=range(num_classes))
    assert np.isnan(per_class[absent])
    ours = roc_auc(probs, labels, average=None, skip_undefined=True)
    assert close(ours, per_class)
    assert close(roc_auc(probs, labels, skip_undefined=True), np.nanmean(per_class))
    assert close(roc_auc(probs, labels, average='micro'),
                 skm.roc_auc_score(labels, probs, multi_class='ovr', average='micro',
                                   labels=range(num_classes)))


@pytest.mark.parametrize('average', ['macro', 'micro', None])
@pytest.mark.parametrize('seed', SEEDS)
def test_roc_auc_multilabel(seed, average):
    scores, target = multilabel_case(seed)
    scores = np.concatenate([scores, [[0.3] * scores.shape[1]] * 2])
    target = np.concatenate([target, np.zeros((1, target.shape[1]), np.int64),
                             np.ones((1, target.shape[1]), np.int64)])   # all defined
    expected = skm.roc_auc_score(target, scores, average=average)
    assert close(roc_auc(scores, target, average=average), expected)


@pytest.mark.parametrize('seed', SEEDS)
def test_average_precision_and_map_multilabel(seed):
    scores, target = multilabel_case(seed)
    expected = skm.average_precision_score(target, scores, average=None)
    ours = average_precision(scores, target)
    assert ours.shape == (scores.shape[1], )
    assert close(ours, expected)
    assert close(multilabel_map(scores, target),
                 skm.average_precision_score(target, scores, average='macro'))
    assert ours[0] == 0.0                               # no positive: 0, as sklearn


@pytest.mark.parametrize('seed', SEEDS)
def test_average_precision_single_label_and_binary(seed):
    scores, labels, _, num_classes = single_label_case(seed, min_classes=3)
    onehot = np.eye(num_classes, dtype=np.int64)[labels]
    expected = skm.average_precision_score(onehot, scores, average=None)
    assert close(average_precision(scores, labels), expected)
    assert close(average_precision(scores[:, 0], onehot[:, 0]),
                 skm.average_precision_score(onehot[:, 0], scores[:, 0]))


@pytest.mark.parametrize('average', ['macro', 'micro', 'samples', None])
@pytest.mark.parametrize('seed', SEEDS)
def test_multilabel_precision_recall_f1(seed, average):
    scores, target = multilabel_case(seed)
    for thr in (0.5, 0.25):
        pred = (scores >= thr).astype(np.int64)
        expected = skm.precision_recall_fscore_support(target, pred, average=average,
                                                       zero_division=0)[:3]
        for ours in (multilabel_precision_recall_f1(scores, target, thr, average),
                     multilabel_precision_recall_f1(torch.from_numpy(pred).bool(), target,
                                                    average=average)):
            for value, ref in zip(ours, expected):
                assert close(value, ref), (thr, value, ref)


@pytest.mark.parametrize('seed', SEEDS[:10])
def test_results_do_not_depend_on_sample_order(seed):
    scores, target = multilabel_case(seed)
    perm = np.random.default_rng(seed).permutation(len(scores))
    assert close(average_precision(scores, target), average_precision(scores[perm],
                                                                      target[perm]))
    assert close(roc_auc(scores, target, None, skip_undefined=True),
                 roc_auc(scores[perm], target[perm], None, skip_undefined=True))


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('call, error, match', [
    (lambda: topk_accuracy(np.zeros(4), [0, 1, 0, 1]), ValueError,
     r'scores must have shape \(N, C\), got shape \(4,\)'),
    (lambda: topk_accuracy(np.zeros((4, 3)), [0, 1, 2]), ValueError,
     r'labels must have shape \(N,\) = \(4,\).*got shape \(3,\)'),
    (lambda: topk_accuracy(np.zeros((2, 3)), [0, 3]), ValueError,
     r'labels must hold values in \[0, 3\), got 3'),
    (lambda: topk_accuracy(np.zeros((2, 3)), [0, 1.5]), ValueError,
     r'labels must hold integers, got 1.5'),
    (lambda: topk_accuracy(np.zeros((2, 3)), [0, 1], topk=(1, 0)), ValueError,
     r'positive int, got 0'),
    (lambda: topk_accuracy(np.zeros((0, 3)), []), ValueError, r'scores is empty'),
    (lambda: topk_accuracy([[0.1, float('nan')]], [0]), ValueError, r'scores contains NaN'),
    (lambda: topk_accuracy('abc', [0]), TypeError, r'scores must be a tensor'),
    (lambda: confusion_matrix([0, 1], [0, 1]), ValueError, r'num_classes is required'),
    (lambda: confusion_matrix(np.zeros((2, 3)), [0, 1], 4), ValueError,
     r'pred holds scores of 3 classes .* num_classes is 4'),
    (lambda: confusion_matrix(np.zeros((2, 3, 1)), [0, 1], 3), ValueError,
     r'pred must have shape \(N,\) .* or \(N, C\)'),
    (lambda: confusion_matrix([0, 5], [0, 1], 3), ValueError,
     r'pred must hold values in \[0, 3\), got 5'),
    (lambda: confusion_matrix([0, 1], [[0], [1]], 3), ValueError,
     r'target must have shape \(N,\) = \(2,\)'),
    (lambda: precision_recall_f1([0, 1], [0, 1], 2, average='weighted'), ValueError,
     r"average must be one of \('macro', 'micro', None\), got 'weighted'"),
    (lambda: matthews_corrcoef([0, 1], [0, 1], 0), ValueError, r'num_classes must be >= 1'),
    (lambda: roc_auc(np.zeros((3, 2)), [0, 1, 1], multi_class='ovo'), ValueError,
     r"only multi_class='ovr'"),
    (lambda: roc_auc([0.1, 0.2], [1, 1]), ValueError, r'both a positive \(1\) and a negative'),
    (lambda: roc_auc([0.1, 0.2], [0, 1, 1]), ValueError,
     r'target must be a 0/1 array of shape \(N,\) = \(2,\)'),
    (lambda: roc_auc(np.zeros((2, 3)), [0, 2]), ValueError,
     r'undefined for 1 class\(es\) \[1\]'),
    (lambda: roc_auc(np.zeros((2, 2)), [0, 0], skip_undefined=True), ValueError,
     r'undefined for every class'),
    (lambda: roc_auc(np.zeros((2, 3)), np.zeros((2, 2))), ValueError,
     r'target must be a 0/1 indicator of shape \(N, C\) = \(2, 3\)'),
    (lambda: average_precision(np.zeros((2, 3)), [[0, 1, 2], [0, 0, 0]]), ValueError,
     r'target must hold values in \{0, 1\}, got 2'),
    (lambda: average_precision(np.zeros((2, 3)), np.zeros((2, 3, 1))), ValueError,
     r'target must have shape \(N,\) = \(2,\) .* or \(N, C\) = \(2, 3\)'),
    (lambda: multilabel_map(np.zeros(3), [0, 1, 0]), ValueError,
     r'scores must have shape \(N, C\)'),
    (lambda: multilabel_precision_recall_f1(np.zeros((2, 3)), np.zeros((3, 2))), ValueError,
     r'target must be a 0/1 indicator of shape \(N, C\) = \(2, 3\)'),
    (lambda: multilabel_precision_recall_f1(np.zeros((2, 3)), np.zeros((2, 3)),
                                            average='weighted'), ValueError,
     r"average must be one of \('macro', 'micro', 'samples', None\)"),
])
def test_function_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


# ---------------------------------------------------------------------------
# Metric classes
# ---------------------------------------------------------------------------

@pytest.fixture
def logs(monkeypatch):
    """Messages the metrics log (tables and warnings)."""
    messages = []
    monkeypatch.setattr(cls_metrics, 'print_log',
                        lambda msg, logger=None, level=None: messages.append(msg))
    return messages


def single_label_samples(scores, labels, preds=None, with_score=True):
    samples = []
    for i, label in enumerate(labels):
        sample = MultiModalDataSample(metainfo={'img_path': f'{i}.jpg'})
        sample.gt_label = int(label)
        if with_score:
            sample.pred_score = torch.as_tensor(scores[i], dtype=torch.float32)
        if preds is not None:
            sample.pred_label = int(preds[i])
        samples.append(sample)
    return samples


def evaluate(metric, samples, batch_size=7):
    for start in range(0, len(samples), batch_size):
        metric.process(None, samples[start:start + batch_size])
    return metric.compute_metrics(metric.results)


def float32(scores):
    """What the metric sees: scores stored in float32 data samples."""
    return np.asarray(scores, dtype=np.float32).astype(np.float64)


@pytest.mark.parametrize('seed', SEEDS[:10])
def test_accuracy_metric(seed, logs):
    scores, labels, _, num_classes = single_label_case(seed, min_classes=3)
    metric = Accuracy(topk=(1, 2, 5))
    metrics = evaluate(metric, single_label_samples(scores, labels))
    assert set(metrics) == {'top1', 'top2', 'top5'}
    for k in (1, 2, 5):
        expected = 100 * skm.top_k_accuracy_score(labels, float32(scores), k=k,
                                                  labels=range(num_classes))
        assert metrics[f'top{k}'] == pytest.approx(expected, abs=1e-4)
    assert 'top5' in logs[-1]


def test_accuracy_through_evaluator_and_pred_label_only():
    init_default_scope('mmfusion')
    evaluator = Evaluator([dict(type='Accuracy', topk=(1, 2))])
    scores = np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.3, 0.5], [0.6, 0.3, 0.1]])
    samples = single_label_samples(scores, [1, 1, 0, 2])
    evaluator.process(samples[:2])
    evaluator.process(samples[2:])
    assert evaluator.evaluate(4) == pytest.approx({'accuracy/top1': 25.0,
                                                   'accuracy/top2': 50.0})

    metric = Accuracy()
    metrics = evaluate(metric, single_label_samples(None, [1, 1, 0], [1, 0, 0], False))
    assert metrics == pytest.approx({'top1': 200 / 3})
    metric = Accuracy(topk=(1, 5))
    with pytest.raises(ValueError, match=r'topk=\(1, 5\) needs `pred_score`'):
        evaluate(metric, single_label_samples(None, [1, 1, 0], [1, 0, 0], False))


@pytest.mark.parametrize('average', ['macro', 'micro', None])
@pytest.mark.parametrize('seed', SEEDS[:10])
def test_single_label_metric(seed, average, logs):
    rng = np.random.default_rng(seed)
    num_classes = int(rng.integers(3, 7))
    labels = all_present_labels(seed, 30, num_classes)
    scores = probabilities(seed, len(labels), num_classes)
    preds = rng.integers(0, num_classes, len(labels))
    classes = [f'cls_{c}' for c in range(num_classes)]
    metric = SingleLabelMetric(items=('precision', 'recall', 'f1-score', 'support', 'mcc',
                                      'roc_auc'), average=average)
    metric.dataset_meta = {'classes': classes}
    metrics = evaluate(metric, single_label_samples(scores, labels, preds))

    p, r, f, s = skm.precision_recall_fscore_support(labels, preds, labels=range(num_classes),
                                                     average=average, zero_division=0)
    auc = skm.roc_auc_score(labels, float32(scores), multi_class='ovr', average=average,
                            labels=range(num_classes))
    expected = {'mcc': 100 * skm.matthews_corrcoef(labels, preds)}
    if average is None:
        for c in range(num_classes):
            expected.update({f'precision_class{c}': 100 * p[c], f'recall_class{c}': 100 * r[c],
                             f'f1-score_class{c}': 100 * f[c], f'support_class{c}': s[c],
                             f'roc_auc_class{c}': 100 * auc[c]})
    else:
        suffix = '' if average == 'macro' else '_micro'
        expected.update({f'precision{suffix}': 100 * p, f'recall{suffix}': 100 * r,
                         f'f1-score{suffix}': 100 * f, f'support{suffix}': len(labels),
                         f'roc_auc{suffix}': 100 * auc})
    assert metrics.keys() == expected.keys()
    assert metrics == pytest.approx(expected, abs=1e-4)
    assert all(isinstance(v, float) for v in metrics.values())
    table = logs[-1]
    assert all(name in table for name in classes)
    assert 'MCC' in table and 'roc_auc' in table


def test_single_label_metric_pred_label_preferred_and_num_classes(logs):
    # pred_label wins over the argmax of pred_score.
    scores = np.array([[0.9, 0.1], [0.9, 0.1]])
    metric = SingleLabelMetric(items=('precision', ), average='micro')
    assert evaluate(metric, single_label_samples(scores, [1, 1], [1, 1])) == \
        pytest.approx({'precision_micro': 100.0})
    # Labels only: C from num_classes or from dataset_meta.
    metric = SingleLabelMetric(num_classes=4, classwise_table=False)
    metrics = evaluate(metric, single_label_samples(None, [0, 1, 2], [0, 1, 1], False))
    expected = skm.precision_recall_fscore_support([0, 1, 2], [0, 1, 1], labels=range(4),
                                                   average='macro', zero_division=0)
    assert metrics == pytest.approx({'precision': 100 * expected[0],
                                     'recall': 100 * expected[1],
                                     'f1-score': 100 * expected[2]})
    assert 'macro avg' in logs[-1] and '\n| 3 ' not in logs[-1]
    metric = SingleLabelMetric()
    metric.dataset_meta = {'classes': ('a', 'b', 'c', 'd')}
    assert evaluate(metric, single_label_samples(None, [0, 1, 2], [0, 1, 1], False)) == \
        pytest.approx(metrics)


def test_single_label_metric_roc_auc_skips_absent_class(logs):
    labels = np.array([0, 1, 0, 1, 0, 1])      # class 2 absent
    scores = probabilities(3, len(labels), 3)
    metric = SingleLabelMetric(items=('roc_auc', ), average=None)
    metric.dataset_meta = {'classes': ['cat', 'dog', 'bird']}
    metrics = evaluate(metric, single_label_samples(scores, labels))
    per_class = skm.roc_auc_score(labels, float32(scores), multi_class='ovr', average=None,
                                  labels=range(3))
    assert metrics == pytest.approx({'roc_auc_class0': 100 * per_class[0],
                                     'roc_auc_class1': 100 * per_class[1]})
    assert any('undefined' in m and 'bird' in m for m in logs)
    assert 'n/a' in logs[-1]

    metric = SingleLabelMetric(items=('roc_auc', ))
    metrics = evaluate(metric, single_label_samples(scores, labels))
    assert metrics['roc_auc'] == pytest.approx(100 * np.nanmean(per_class))


def single_label_evaluator(**kwargs):
    init_default_scope('mmfusion')
    return Evaluator([dict(type='SingleLabelMetric', **kwargs)])


def test_single_label_metric_through_evaluator():
    evaluator = single_label_evaluator(items=('f1-score', 'mcc'))
    evaluator.dataset_meta = {'classes': ['a', 'b', 'c']}
    labels, preds = [0, 1, 2, 2, 1], [0, 2, 2, 2, 1]
    evaluator.process(single_label_samples(probabilities(0, 5, 3), labels, preds))
    metrics = evaluator.evaluate(5)
    assert metrics == pytest.approx({
        'single-label/f1-score': 100 * skm.f1_score(labels, preds, average='macro'),
        'single-label/mcc': 100 * skm.matthews_corrcoef(labels, preds)})


def multilabel_samples(scores, target, fmt):
    samples = []
    for row, truth in zip(scores, target):
        sample = MultiModalDataSample()
        sample.pred_score = torch.as_tensor(row, dtype=torch.float32)
        sample.gt_label = truth if fmt == 'onehot' else np.flatnonzero(truth)
        samples.append(sample)
    return samples


@pytest.mark.parametrize('average', ['macro', 'micro', 'samples', None])
@pytest.mark.parametrize('seed', SEEDS[:10])
def test_multilabel_metric(seed, average, logs):
    scores, target = multilabel_case(seed)
    num_classes = scores.shape[1]
    if num_classes <= 2:
        return          # 'auto' may be ambiguous; covered below
    classes = [f'label_{c}' for c in range(num_classes)]
    results = []
    for fmt in ('index', 'onehot'):
        metric = MultiLabelMetric(thr=0.5, average=average,
                                  items=('precision', 'recall', 'f1-score', 'support', 'mAP'))
        metric.dataset_meta = {'classes': classes}
        results.append(evaluate(metric, multilabel_samples(scores, target, fmt)))
    assert results[0] == results[1]
    metrics = results[0]

    pred = (float32(scores) >= 0.5).astype(np.int64)
    p, r, f, _ = skm.precision_recall_fscore_support(target, pred, average=average,
                                                     zero_division=0)
    ap = skm.average_precision_score(target, float32(scores), average=None)
    expected = {'mAP': 100 * ap.mean()}
    if average is None:
        for c in range(num_classes):
            expected.update({f'precision_class{c}': 100 * p[c], f'recall_class{c}': 100 * r[c],
                             f'f1-score_class{c}': 100 * f[c],
                             f'support_class{c}': target[:, c].sum(),
                             f'AP_class{c}': 100 * ap[c]})
    else:
        suffix = '' if average == 'macro' else f'_{average}'
        expected.update({f'precision{suffix}': 100 * p, f'recall{suffix}': 100 * r,
                         f'f1-score{suffix}': 100 * f, f'support{suffix}': target.sum()})
    assert metrics.keys() == expected.keys()
    assert metrics == pytest.approx(expected, abs=1e-4)
    table = logs[-1]
    assert all(name in table for name in classes) and 'AP' in table
    assert any('no positive' in m and 'label_0' in m for m in logs)     # class 0


def test_multilabel_metric_through_evaluator_and_gt_formats():
    init_default_scope('mmfusion')
    evaluator = Evaluator([dict(type='MultiLabelMetric', items=('mAP', 'f1-score'))])
    scores = np.array([[0.9, 0.2, 0.6], [0.1, 0.8, 0.7], [0.4, 0.3, 0.2]])
    target = np.array([[1, 0, 1], [0, 1, 0], [1, 0, 0]])
    evaluator.process(multilabel_samples(scores, target, 'index'))
    metrics = evaluator.evaluate(3)
    assert metrics == pytest.approx({
        'multi-label/mAP': 100 * skm.average_precision_score(target, scores),
        'multi-label/f1-score': 100 * skm.f1_score(target, (scores >= 0.5).astype(int),
                                                   average='macro', zero_division=0)})

    # Two classes: [0, 1] reads both ways; 'auto' refuses to guess.
    sample = {'pred_score': torch.tensor([0.2, 0.9]), 'gt_label': torch.tensor([0, 1])}
    with pytest.raises(ValueError, match=r'reads both as class indices and as a one-hot'):
        MultiLabelMetric().process(None, [sample])
    for fmt, expected in (('index', [True, True]), ('onehot', [False, True])):
        metric = MultiLabelMetric(gt_format=fmt)
        metric.process(None, [sample])
        assert metric.results[0]['gt_label'].tolist() == expected
    # Empty index list: no positive label; a repeated index is one-hot in 'auto'.
    metric = MultiLabelMetric()
    metric.process(None, [{'pred_score': torch.rand(3), 'gt_label': torch.tensor([], dtype=int)},
                          {'pred_score': torch.rand(3), 'gt_label': torch.tensor([1, 1, 0])}])
    assert [r['gt_label'].tolist() for r in metric.results] == [[False] * 3,
                                                                 [True, True, False]]


def test_results_are_cpu_copies_and_ranks_can_be_merged():
    """What BaseMetric gathers across ranks: picklable CPU tensors and numbers,
    computed over the union of the ranks' results."""
    scores, target = multilabel_case(3)
    scores, target = np.tile(scores, (1, 2)), np.tile(target, (1, 2))
    samples = multilabel_samples(scores, target, 'onehot')
    batch = torch.as_tensor(scores, dtype=torch.float32)
    for i, sample in enumerate(samples):
        sample.pred_score = batch[i]           # views of one batch tensor
    whole = MultiLabelMetric(average='micro')
    expected = evaluate(whole, samples)
    ranks = [MultiLabelMetric(average='micro') for _ in range(2)]
    ranks[0].process(None, samples[::2])
    ranks[1].process(None, samples[1::2])
    gathered = pickle.loads(pickle.dumps(ranks[0].results + ranks[1].results))
    assert MultiLabelMetric(average='micro').compute_metrics(gathered) == \
        pytest.approx(expected)
    for result in whole.results:
        score = result['pred_score']
        assert score.device.type == 'cpu'
        assert score.untyped_storage().nbytes() == score.numel() * score.element_size()


@pytest.mark.parametrize('make, samples, match', [
    (lambda: SingleLabelMetric(), [{'gt_label': torch.tensor([0, 2]),
                                    'pred_score': torch.rand(3)}],
     r'single-label: gt_label must hold exactly one class index'),
    (lambda: SingleLabelMetric(), [{'gt_label': torch.tensor([0])}],
     r'needs `pred_label` or `pred_score`'),
    (lambda: SingleLabelMetric(items=('roc_auc', )),
     [{'gt_label': torch.tensor([0]), 'pred_label': torch.tensor([0])}],
     r"'roc_auc' needs `pred_score`"),
    (lambda: Accuracy(), [{'pred_score': torch.rand(3)}], r'needs `gt_label`'),
    (lambda: Accuracy(), [{'gt_label': torch.tensor([0]), 'pred_score': torch.rand(3, 1)}],
     r'pred_score must have shape \(C,\)'),
    (lambda: MultiLabelMetric(), [{'gt_label': torch.tensor([0])}], r'needs `pred_score`'),
    (lambda: MultiLabelMetric(), [{'gt_label': torch.tensor([5]),
                                   'pred_score': torch.rand(3)}],
     r'class indices outside \[0, 3\)'),
    (lambda: MultiLabelMetric(gt_format='onehot'),
     [{'gt_label': torch.tensor([1, 0]), 'pred_score': torch.rand(3)}],
     r'one-hot gt_label must have shape \(C,\) = \(3,\)'),
])
def test_process_errors(make, samples, match):
    with pytest.raises(ValueError, match=match):
        make().process(None, samples)


def test_compute_and_config_errors(logs):
    with pytest.raises(ValueError, match=r"unknown item 'accuracy'"):
        SingleLabelMetric(items=('accuracy', ))
    with pytest.raises(ValueError, match=r"average must be one of .* got 'samples'"):
        SingleLabelMetric(average='samples')
    with pytest.raises(ValueError, match=r'gt_format must be'):
        MultiLabelMetric(gt_format='dense')
    with pytest.raises(ValueError, match=r'topk must be positive ints'):
        Accuracy(topk=(1, 0))
    with pytest.raises(ValueError, match=r'received no samples'):
        SingleLabelMetric().compute_metrics([])

    metric = SingleLabelMetric()
    metric.dataset_meta = {'classes': ['a', 'b']}
    with pytest.raises(ValueError, match=r'inconsistent numbers of classes'):
        evaluate(metric, single_label_samples(np.random.rand(2, 3), [0, 1]))
    metric = SingleLabelMetric()
    with pytest.raises(ValueError, match=r'cannot tell the number of classes'):
        evaluate(metric, single_label_samples(None, [0, 1], [0, 1], False))
    metric = SingleLabelMetric(num_classes=2)
    with pytest.raises(ValueError, match=r'target must hold values in \[0, 2\), got 2'):
        evaluate(metric, single_label_samples(None, [0, 2], [0, 1], False))
    metric = MultiLabelMetric()
    metric.process(None, [{'pred_score': torch.rand(3), 'gt_label': torch.tensor([2])},
                          {'pred_score': torch.rand(4), 'gt_label': torch.tensor([2])}])
    with pytest.raises(ValueError, match=r'different numbers of classes: \[3, 4\]'):
        metric.compute_metrics(metric.results)
    metric = MultiLabelMetric()
    metric.dataset_meta = {'classes': ['a', 'b']}
    metric.process(None, [{'pred_score': torch.rand(3), 'gt_label': torch.tensor([2])}])
    with pytest.raises(ValueError, match=r'dataset_meta\["classes"\] has 2 classes but the '
                                         r'predictions have 3'):
        metric.compute_metrics(metric.results)
