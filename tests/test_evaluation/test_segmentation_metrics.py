"""Tests of the segmentation scores: hand-computed areas, scikit-learn, the metrics."""
import math

import numpy as np
import pytest
import torch
from mmengine.evaluator import Evaluator
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from sklearn.metrics import accuracy_score, confusion_matrix, jaccard_score

import mmfusion.evaluation.metrics.segmentation as seg_module
from mmfusion.errors import ConfigError
from mmfusion.evaluation.functional import (
    binary_intersect_and_union,
    intersect_and_union,
    summarize,
)
from mmfusion.evaluation.metrics import IoUMetric, ReferringIoUMetric
from mmfusion.structures import MultiModalDataSample

IGNORE = 255


def seg_sample(pred, gt, **meta):
    """``.to_dict()`` of a data sample with (1, H, W) prediction and ground truth."""
    sample = MultiModalDataSample(metainfo=dict(ori_shape=np.shape(gt), **meta))
    sample.pred_sem_seg = PixelData(data=torch.as_tensor(np.asarray(pred))[None].long())
    sample.gt_sem_seg = PixelData(data=torch.as_tensor(np.asarray(gt))[None].long())
    return sample.to_dict()


def run(metric, samples, batch_size=2):
    for start in range(0, len(samples), batch_size):
        metric.process(None, samples[start:start + batch_size])
    return metric.compute_metrics(metric.results)


@pytest.fixture
def logs(monkeypatch):
    messages = []
    monkeypatch.setattr(seg_module, 'print_log',
                        lambda msg, logger=None, level=None: messages.append(msg))
    return messages


def sklearn_iou(y_true, y_pred, num_classes):
    """Per-class IoU by scikit-learn, NaN for classes in neither array."""
    labels = list(range(num_classes))
    iou = jaccard_score(y_true, y_pred, labels=labels, average=None, zero_division=0)
    absent = ~np.isin(labels, np.concatenate([y_true, y_pred]))
    return np.where(absent, np.nan, iou)


# --- functional ---------------------------------------------------------------

# 3 classes; class 2 is never in the ground truth, class 3 of 4 in neither map.
PRED = [[0, 0, 1, 2],
        [1, 1, 1, 0]]
GT = [[0, 1, 1, IGNORE],
      [1, 1, 0, 0]]
# scored pixels (gt, pred): (0,0) (1,0) (1,1) | (1,1) (1,1) (0,1) (0,0); the
# ignored pixel's prediction (2) does not count.


def test_intersect_and_union_by_hand():
    inter, union, area_pred, area_label = intersect_and_union(
        torch.tensor(PRED), torch.tensor(GT), num_classes=4, ignore_index=IGNORE)
    assert area_label.tolist() == [3, 4, 0, 0]
    assert area_pred.tolist() == [3, 4, 0, 0]
    assert inter.tolist() == [2, 3, 0, 0]
    assert union.tolist() == [4, 5, 0, 0]
    assert inter.dtype == torch.int64


def test_summarize_by_hand_and_nan_classes():
    scores = summarize(*intersect_and_union(torch.tensor(PRED), torch.tensor(GT), 4, IGNORE))
    assert scores['aAcc'] == pytest.approx(5 / 7)
    assert scores['IoU'][:2].tolist() == pytest.approx([2 / 4, 3 / 5])
    assert scores['Acc'][:2].tolist() == pytest.approx([2 / 3, 3 / 4])
    # classes 2 and 3 are in neither map: NaN, left out of the means
    assert torch.isnan(scores['IoU'][2:]).all() and torch.isnan(scores['Acc'][2:]).all()
    assert scores['mIoU'] == pytest.approx((2 / 4 + 3 / 5) / 2)
    assert scores['mAcc'] == pytest.approx((2 / 3 + 3 / 4) / 2)

    # predicted but absent from the ground truth: IoU 0 (it counts), Acc NaN
    scores = summarize(*intersect_and_union(torch.tensor([[2, 0]]), torch.tensor([[0, 0]]),
                                            3, IGNORE))
    assert scores['IoU'][0] == pytest.approx(0.5) and scores['IoU'][2] == 0
    assert math.isnan(scores['Acc'][2]) and math.isnan(scores['IoU'][1])
    assert scores['mIoU'] == pytest.approx(0.25)
    assert scores['mAcc'] == pytest.approx(0.5)


def test_everything_ignored_gives_nan():
    scores = summarize(*intersect_and_union(torch.zeros(2, 2), torch.full((2, 2), IGNORE), 2))
    assert all(math.isnan(scores[k]) for k in ('aAcc', 'mIoU', 'mAcc'))


def test_out_of_range_values_raise():
    with pytest.raises(ValueError, match=r'label holds values \[3\]'):
        intersect_and_union(torch.tensor([0, 1]), torch.tensor([0, 3]), 3, IGNORE)
    with pytest.raises(ValueError, match=r'pred holds values \[5\]'):
        intersect_and_union(torch.tensor([5, 1]), torch.tensor([0, 1]), 3, IGNORE)
    with pytest.raises(ValueError, match='same shape'):
        intersect_and_union(torch.zeros(2, 3), torch.zeros(3, 2), 3, IGNORE)


@pytest.mark.parametrize('seed', range(6))
def test_functional_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    num_classes = int(rng.integers(2, 6))
    pred = rng.integers(0, num_classes, (13, 17))
    # ground truth agrees with the prediction on ~half the pixels, so the
    # scores are far from 0; ~15% of the pixels are ignored
    gt = np.where(rng.random(pred.shape) < 0.5, pred, rng.integers(0, num_classes, pred.shape))
    gt[rng.random(gt.shape) < 0.15] = IGNORE
    scores = summarize(*intersect_and_union(torch.from_numpy(pred), torch.from_numpy(gt),
                                            num_classes, IGNORE))

    scored = gt != IGNORE
    y_true, y_pred = gt[scored], pred[scored]
    labels = list(range(num_classes))
    iou = sklearn_iou(y_true, y_pred, num_classes)
    cm = confusion_matrix(y_true, y_pred, labels=labels)
    with np.errstate(invalid='ignore', divide='ignore'):
        acc = np.diag(cm) / cm.sum(1)
    np.testing.assert_allclose(scores['IoU'].numpy(), iou, equal_nan=True)
    np.testing.assert_allclose(scores['Acc'].numpy(), acc, equal_nan=True)
    assert scores['aAcc'] == pytest.approx(accuracy_score(y_true, y_pred))
    assert scores['mIoU'] == pytest.approx(np.nanmean(iou))


# --- IoUMetric ----------------------------------------------------------------

def random_split(seed, num_classes, ignore_index=IGNORE, num_samples=5):
    """Samples of different sizes; ~10% ignored pixels; class 0 rare."""
    rng = np.random.default_rng(seed)
    samples, truths, preds = [], [], []
    for _ in range(num_samples):
        h, w = (int(v) for v in rng.integers(4, 20, 2))
        pred = rng.integers(0, num_classes, (h, w))
        gt = np.where(rng.random((h, w)) < 0.6, pred, rng.integers(0, num_classes, (h, w)))
        gt[rng.random((h, w)) < 0.1] = ignore_index
        samples.append(seg_sample(pred, gt, img_path=f'{len(samples)}.png'))
        truths.append(gt.ravel())
        preds.append(pred.ravel())
    return samples, np.concatenate(truths), np.concatenate(preds)


@pytest.mark.parametrize('seed', range(4))
def test_iou_metric_matches_sklearn_over_samples_of_different_sizes(seed, logs):
    num_classes = 4
    samples, y_true, y_pred = random_split(seed, num_classes)
    metric = IoUMetric()
    metric.dataset_meta = dict(classes=('bg', 'circle', 'square', 'triangle'))
    metrics = run(metric, samples)

    scored = y_true != IGNORE
    y_true, y_pred = y_true[scored], y_pred[scored]
    iou = jaccard_score(y_true, y_pred, labels=range(num_classes), average=None)
    cm = confusion_matrix(y_true, y_pred, labels=range(num_classes))
    assert set(metrics) == {'aAcc', 'mIoU', 'mAcc'}
    # percent
    assert metrics['mIoU'] == pytest.approx(100 * iou.mean())
    assert metrics['mAcc'] == pytest.approx(100 * (np.diag(cm) / cm.sum(1)).mean())
    assert metrics['aAcc'] == pytest.approx(100 * accuracy_score(y_true, y_pred))
    assert 'square' in logs[-1] and f'{100 * iou[2]:.2f}' in logs[-1]


def test_iou_metric_reads_ignore_index_from_metainfo():
    # class 0 is "unlabelled" in this dataset's metainfo and must be ignored
    samples, y_true, y_pred = random_split(1, 3, ignore_index=0)
    metric = IoUMetric()
    metric.dataset_meta = dict(classes=('void', 'a', 'b'), ignore_index=0)
    metrics = run(metric, samples)
    scored = y_true != 0
    iou = sklearn_iou(y_true[scored], y_pred[scored], 3)
    # class 0 is still predicted on scored pixels but never true there
    assert iou[0] == 0 and not np.isnan(iou).any()
    assert metrics['mIoU'] == pytest.approx(100 * np.nanmean(iou))
    # an explicit argument wins over the metainfo: 0 is then a class again
    metric = IoUMetric(ignore_index=IGNORE)
    metric.dataset_meta = dict(classes=('void', 'a', 'b'), ignore_index=0)
    assert run(metric, samples)['aAcc'] == pytest.approx(
        100 * accuracy_score(y_true, y_pred))


def test_iou_metric_through_evaluator():
    init_default_scope('mmfusion')
    evaluator = Evaluator([dict(type='IoUMetric', num_classes=4)])
    sample = MultiModalDataSample(metainfo=dict(img_path='a.png'))
    sample.pred_sem_seg = PixelData(data=torch.tensor([PRED]))
    sample.gt_sem_seg = PixelData(data=torch.tensor([GT]))
    small = MultiModalDataSample()
    small.pred_sem_seg = PixelData(data=torch.tensor([[[1]]]))
    small.gt_sem_seg = PixelData(data=torch.tensor([[[1]]]))
    evaluator.process([sample, small])
    metrics = evaluator.evaluate(2)
    # the 1x1 sample adds one correct class-1 pixel: class 1 has I=4, U=6
    assert metrics == pytest.approx({'seg/aAcc': 100 * 6 / 8,
                                     'seg/mIoU': 100 * (2 / 4 + 4 / 6) / 2,
                                     'seg/mAcc': 100 * (2 / 3 + 4 / 5) / 2})


def test_iou_metric_errors():
    with pytest.raises(ConfigError, match='num_classes'):
        IoUMetric(num_classes=0)
    metric = IoUMetric()
    with pytest.raises(ConfigError, match='number of classes'):
        metric.process(None, [seg_sample([[0]], [[0]])])
    metric = IoUMetric(num_classes=3)
    with pytest.raises(ValueError, match=r"pred_sem_seg is \(2, 2\).*\(2, 3\).*'b.png'"):
        metric.process(None, [seg_sample(np.zeros((2, 2)), np.zeros((2, 3)),
                                         img_path='b.png')])
    with pytest.raises(ValueError, match=r"'c.png'.*label holds values \[7\]"):
        metric.process(None, [seg_sample([[0, 1]], [[0, 7]], img_path='c.png')])
    with pytest.raises(ValueError, match='gt_sem_seg'):
        metric.process(None, [{'pred_sem_seg': {'data': torch.zeros(1, 2, 2)}}])


# --- referring segmentation ---------------------------------------------------

def test_binary_intersect_and_union():
    pred = torch.tensor([[1, 1, 0], [0, 1, 1]])
    gt = torch.tensor([[1, 0, 0], [IGNORE, 1, 0]])
    # scored foreground: pred {00, 01, 11, 12}, gt {00, 11}
    assert binary_intersect_and_union(pred, gt, IGNORE) == (2, 4)
    with pytest.raises(ValueError, match=r'binary pred mask.*\[2\]'):
        binary_intersect_and_union(torch.tensor([2]), torch.tensor([1]))


def test_referring_metric_cumulative_vs_mean(logs):
    small_half = seg_sample(np.array([[1, 0], [0, 0]]), np.array([[1, 1], [0, 0]]))
    big = np.zeros((6, 6), dtype=int)
    big[1:5, 1:4] = 1  # 12 pixels
    big_exact = seg_sample(big, big)
    both_empty = seg_sample(np.zeros((3, 3)), np.zeros((3, 3)))
    wrong = seg_sample(np.array([[1, 1, 0, 1]]), np.array([[0, 0, 1, IGNORE]]))
    metric = ReferringIoUMetric(thresholds=(0.5, 0.9))
    metrics = run(metric, [small_half, big_exact, both_empty, wrong])
    # per-sample I/U: 1/2, 12/12, empty-empty counts as 1, 0/3
    assert metrics['IoU'] == pytest.approx(100 * (1 + 12 + 0 + 0) / (2 + 12 + 0 + 3))
    assert metrics['mIoU'] == pytest.approx(100 * (0.5 + 1 + 1 + 0) / 4)
    assert metrics['Pr@0.5'] == pytest.approx(75.0)  # an IoU of exactly 0.5 passes
    assert metrics['Pr@0.9'] == pytest.approx(50.0)
    assert set(metrics) == {'IoU', 'mIoU', 'Pr@0.5', 'Pr@0.9'}
    assert 'Pr@0.9' in logs[-1]


def test_referring_metric_through_evaluator_with_prefix():
    init_default_scope('mmfusion')
    evaluator = Evaluator([dict(type='ReferringIoUMetric')])
    sample = MultiModalDataSample()
    sample.pred_sem_seg = PixelData(data=torch.tensor([[[1, 1, 1, 0]]]))
    sample.gt_sem_seg = PixelData(data=torch.tensor([[[1, 1, 0, 0]]]))
    evaluator.process([sample])
    metrics = evaluator.evaluate(1)
    assert metrics['refseg/IoU'] == pytest.approx(100 * 2 / 3)
    assert metrics['refseg/mIoU'] == pytest.approx(100 * 2 / 3)
    assert metrics['refseg/Pr@0.5'] == 100.0 and metrics['refseg/Pr@0.7'] == 0.0


def test_referring_metric_errors():
    with pytest.raises(ConfigError, match='thresholds'):
        ReferringIoUMetric(thresholds=(0.5, 1.5))
    with pytest.raises(ValueError, match=r"'r.png'.*binary label mask"):
        ReferringIoUMetric().process(None, [seg_sample([[1]], [[3]], img_path='r.png')])
