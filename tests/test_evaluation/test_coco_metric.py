"""Tests of CocoMetric: hand-computed COCO APs, both ground-truth sources, errors."""
import json

import numpy as np
import pytest
import torch
from mmengine.evaluator import Evaluator
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

import mmfusion.evaluation.metrics.coco as coco_module
from mmfusion.errors import AnnotationError, AnnotationFileNotFoundError
from mmfusion.evaluation.metrics import CocoMetric
from mmfusion.structures import MultiModalDataSample

KEYS = ('bbox_mAP', 'bbox_mAP_50', 'bbox_mAP_75', 'bbox_mAP_s', 'bbox_mAP_m', 'bbox_mAP_l')
# Boxes (xyxy, original coordinates) in each COCO area range of a 200x200 image.
SMALL = [10, 10, 30, 30]        # 20x20 = 400 < 32^2
MEDIUM = [50, 50, 100, 100]     # 50x50 = 2500
LARGE = [0, 90, 120, 200]       # 120x110 = 13200 > 96^2


def det_sample(gt_boxes, gt_labels, pred_boxes=(), scores=(), labels=(), img_id=1,
               scale=(1.0, 1.0), ignore_flags=None, **meta):
    """A data sample as the Evaluator sees it: ``.to_dict()`` of a real data sample.

    ``gt_boxes`` are in original coordinates; the packed ``gt_instances`` hold
    them after a resize by ``scale`` (w_scale, h_scale), as a test pipeline
    would. Predictions are in original coordinates, as a detector returns them.
    """
    sample = MultiModalDataSample(metainfo=dict(img_id=img_id, ori_shape=(200, 200),
                                                scale_factor=scale, **meta))
    factor = torch.tensor([scale[0], scale[1], scale[0], scale[1]])
    gt = InstanceData(bboxes=torch.tensor(gt_boxes, dtype=torch.float32).reshape(-1, 4) * factor,
                      labels=torch.tensor(gt_labels, dtype=torch.long).reshape(-1))
    if ignore_flags is not None:
        gt.ignore_flags = torch.tensor(ignore_flags, dtype=torch.bool)
    sample.gt_instances = gt
    sample.pred_instances = InstanceData(
        bboxes=torch.tensor(pred_boxes, dtype=torch.float32).reshape(-1, 4),
        scores=torch.tensor(scores, dtype=torch.float32).reshape(-1),
        labels=torch.tensor(labels, dtype=torch.long).reshape(-1))
    return sample.to_dict()


def evaluate(samples, classes=('circle', 'square'), batch_size=2, **kwargs):
    metric = CocoMetric(**kwargs)
    metric.dataset_meta = dict(classes=classes)
    for start in range(0, len(samples), batch_size):
        metric.process(None, samples[start:start + batch_size])
    return metric.compute_metrics(metric.results)


@pytest.fixture
def logs(monkeypatch):
    """Messages CocoMetric logs (the summary and the per-class table)."""
    messages = []
    monkeypatch.setattr(coco_module, 'print_log',
                        lambda msg, logger=None, level=None: messages.append(msg))
    return messages


def table_row(logs, name):
    """The cells of the per-class table row of class ``name``."""
    for line in logs[-1].splitlines():
        cells = [c.strip() for c in line.strip('|').split('|')]
        if cells[0] == name:
            return cells[1:]
    raise AssertionError(f'no row {name!r} in {logs[-1]}')


def write_coco(path, images, annotations, categories):
    path.write_text(json.dumps(dict(images=images, annotations=annotations,
                                    categories=categories)))
    return str(path)


def xywh(box):
    return [box[0], box[1], box[2] - box[0], box[3] - box[1]]


# --- hand-computed cases ------------------------------------------------------

def test_perfect_predictions_give_one_in_every_area_range(logs):
    samples = [
        det_sample([SMALL, LARGE], [0, 1], [SMALL, LARGE], [0.9, 0.8], [0, 1], img_id=1),
        det_sample([MEDIUM], [1], [MEDIUM], [0.7], [1], img_id=2),
    ]
    metrics = evaluate(samples, classwise=True)
    assert set(metrics) == set(KEYS)
    for key in KEYS:
        assert metrics[key] == pytest.approx(1.0), key
    assert table_row(logs, 'circle') == ['1.000', '1.000', '1.000', '1.000', 'n/a', 'n/a']
    assert table_row(logs, 'square') == ['1.000', '1.000', '1.000', 'n/a', '1.000', '1.000']


def test_one_of_two_objects_missed():
    # One class, two medium objects, one found exactly: recall reaches 0.5
    # with precision 1, so 51 of COCO's 101 recall points (0, 0.01 .. 0.50)
    # have precision 1 and the other 50 have 0, at every IoU threshold.
    samples = [det_sample([MEDIUM, [120, 120, 170, 170]], [0, 0], [MEDIUM], [0.9], [0])]
    metrics = evaluate(samples)
    for key in ('bbox_mAP', 'bbox_mAP_50', 'bbox_mAP_75', 'bbox_mAP_m'):
        assert metrics[key] == pytest.approx(51 / 101), key
    # no small or large ground truth: undefined, reported as -1 (pycocotools)
    assert metrics['bbox_mAP_s'] == -1
    assert metrics['bbox_mAP_l'] == -1


def test_wrong_label_scores_zero_for_that_class(logs):
    # circle found; the square is found too but labelled circle: a false
    # positive of circle (after the true positive, so circle's AP stays 1)
    # and a miss of square (AP 0).
    samples = [det_sample([SMALL, MEDIUM], [0, 1], [SMALL, MEDIUM], [0.9, 0.8], [0, 0])]
    metrics = evaluate(samples, classwise=True)
    assert metrics['bbox_mAP'] == pytest.approx(0.5)
    assert table_row(logs, 'circle')[:3] == ['1.000', '1.000', '1.000']
    assert table_row(logs, 'square')[:3] == ['0.000', '0.000', '0.000']


def test_empty_predictions_give_zero_not_an_error():
    samples = [det_sample([SMALL], [0], img_id=1), det_sample([MEDIUM], [1], img_id=2)]
    metrics = evaluate(samples)
    for key in ('bbox_mAP', 'bbox_mAP_50', 'bbox_mAP_75', 'bbox_mAP_s', 'bbox_mAP_m'):
        assert metrics[key] == 0.0, key
    assert metrics['bbox_mAP_l'] == -1


def test_false_positive_in_an_image_without_ground_truth_counts():
    # The highest-scored detection is in an image with no object: precision
    # is 1/2 at recall 1, and the interpolated precision 1/2 everywhere.
    samples = [det_sample([MEDIUM], [0], [MEDIUM], [0.8], [0], img_id=1),
               det_sample([], [], [MEDIUM], [0.9], [0], img_id=2)]
    assert evaluate(samples)['bbox_mAP'] == pytest.approx(0.5)
    # ranked below the true positive it costs nothing
    samples = [det_sample([MEDIUM], [0], [MEDIUM], [0.8], [0], img_id=1),
               det_sample([], [], [MEDIUM], [0.5], [0], img_id=2)]
    assert evaluate(samples)['bbox_mAP'] == pytest.approx(1.0)


def test_detections_on_ignored_boxes_are_not_false_positives(tmp_path):
    # A detection inside a crowd region: IoU 0.25 with the crowd box as a
    # normal object, but COCO matches crowd boxes by the share of the
    # detection they cover (1 here), and a detection matched to a crowd box
    # is ignored.
    crowd = [100, 100, 180, 180]
    inside = [110, 110, 150, 150]
    gt = [MEDIUM, crowd]
    preds = dict(pred_boxes=[MEDIUM, inside], scores=[0.8, 0.9], labels=[0, 0])
    # from the samples: gt_instances.ignore_flags marks the crowd box
    assert evaluate([det_sample(gt, [0, 0], ignore_flags=[False, True], **preds)])[
        'bbox_mAP'] == pytest.approx(1.0)
    # without the flag that detection is a false positive ranked first and
    # the crowd box a missed object: precision 1/2 up to recall 1/2
    assert evaluate([det_sample(gt, [0, 0], **preds)])['bbox_mAP'] == pytest.approx(
        0.5 * 51 / 101)
    # mmdet's packing: crowd boxes in ignored_instances
    sample = det_sample([MEDIUM], [0], **preds)
    sample['ignored_instances'] = InstanceData(bboxes=torch.tensor([crowd], dtype=torch.float32),
                                               labels=torch.tensor([0])).to_dict()
    assert evaluate([sample])['bbox_mAP'] == pytest.approx(1.0)
    # the dataset's raw records (metainfo `instances`, original coordinates)
    # take precedence over gt_instances, and need no undoing of a flip
    raw = [dict(bbox=MEDIUM, bbox_label=0, ignore_flag=0),
           dict(bbox=crowd, bbox_label=0, ignore_flag=1)]
    sample = det_sample([SMALL], [1], scale=(2.0, 2.0), flip=True, instances=raw, **preds)
    assert evaluate([sample])['bbox_mAP'] == pytest.approx(1.0)
    # from an ann file: iscrowd
    ann_file = write_coco(
        tmp_path / 'crowd.json', [dict(id=1, width=200, height=200)],
        [dict(id=1, image_id=1, category_id=1, bbox=xywh(MEDIUM), area=2500, iscrowd=0),
         dict(id=2, image_id=1, category_id=1, bbox=xywh(crowd), area=6400, iscrowd=1)],
        [dict(id=1, name='circle'), dict(id=2, name='square')])
    assert evaluate([det_sample(gt, [0, 0], **preds)], ann_file=ann_file)[
        'bbox_mAP'] == pytest.approx(1.0)


def test_each_sample_is_its_own_image_without_ann_file():
    # Referring detection: two expressions on one picture select different
    # objects. The second expression's detection of object A is wrong for it
    # even though A is an object of the picture: dets A@.95 (FP), A@.9 (TP),
    # B@.5 (TP) give precision 2/3 at recall 1, so AP 2/3.
    samples = [det_sample([SMALL], [0], [SMALL], [0.9], [0], img_id=7),
               det_sample([MEDIUM], [0], [SMALL, MEDIUM], [0.95, 0.5], [0, 0], img_id=7)]
    assert evaluate(samples)['bbox_mAP'] == pytest.approx(2 / 3)


# --- both ground-truth sources agree with pycocotools ------------------------

def random_scene(rng, num_images=6, num_classes=3):
    """Ground truth and noisy detections of random boxes, crowd boxes included."""
    scenes = []
    for image in range(num_images):
        n = int(rng.integers(0, 5))  # an image may have no object
        xy = rng.uniform(0, 150, (n, 2))
        wh = rng.uniform(5, 120, (n, 2))
        boxes = np.concatenate([xy, np.minimum(xy + wh, 200)], 1).round(1)
        labels = rng.integers(0, num_classes, n)
        crowd = rng.random(n) < 0.15
        keep = rng.random(n) < 0.8  # detected objects
        jitter = rng.normal(0, 4, (n, 4))
        pred_boxes = list((boxes + jitter)[keep])
        pred_labels = list(np.where(rng.random(n) < 0.85, labels, (labels + 1) % num_classes)
                           [keep])
        for _ in range(int(rng.integers(0, 3))):  # false positives
            x, y = rng.uniform(0, 150, 2)
            pred_boxes.append(np.array([x, y, x + 30, y + 40]))
            pred_labels.append(int(rng.integers(0, num_classes)))
        scores = rng.random(len(pred_boxes))
        scenes.append(dict(img_id=100 + image, boxes=boxes, labels=labels, crowd=crowd,
                           pred_boxes=np.array(pred_boxes).reshape(-1, 4),
                           pred_labels=np.array(pred_labels, dtype=int), scores=scores))
    return scenes


@pytest.mark.parametrize('seed', range(4))
def test_ann_file_and_samples_modes_agree_with_pycocotools(tmp_path, seed):
    rng = np.random.default_rng(seed)
    scenes = random_scene(rng)
    classes = ('circle', 'square', 'triangle')
    # category ids neither contiguous nor listed in class order: labels map
    # to categories by name
    cat_ids = {'triangle': 30, 'circle': 5, 'square': 12}
    categories = [dict(id=cid, name=name) for name, cid in cat_ids.items()]
    images, annotations, detections = [], [], []
    for scene in scenes:
        images.append(dict(id=scene['img_id'], width=200, height=200))
        for box, label, crowd in zip(scene['boxes'], scene['labels'], scene['crowd']):
            annotations.append(dict(id=len(annotations) + 1, image_id=scene['img_id'],
                                    category_id=cat_ids[classes[label]], bbox=xywh(box),
                                    area=float((box[2] - box[0]) * (box[3] - box[1])),
                                    iscrowd=int(crowd)))
        for box, label, score in zip(scene['pred_boxes'], scene['pred_labels'],
                                     scene['scores']):
            detections.append(dict(image_id=scene['img_id'],
                                   category_id=cat_ids[classes[label]],
                                   bbox=[float(v) for v in xywh(box)], score=float(score)))
    ann_file = write_coco(tmp_path / 'instances.json', images, annotations, categories)

    # the reference: pycocotools on its own
    coco_gt = COCO(ann_file)
    coco_eval = COCOeval(coco_gt, coco_gt.loadRes(detections), 'bbox')
    coco_eval.evaluate()
    coco_eval.accumulate()
    coco_eval.summarize()
    expected = dict(zip(KEYS, coco_eval.stats[:6]))

    def samples(scale):
        return [det_sample(s['boxes'], s['labels'], s['pred_boxes'], s['scores'],
                           s['pred_labels'], img_id=s['img_id'], scale=scale,
                           ignore_flags=s['crowd']) for s in scenes]

    from_file = evaluate(samples((1.0, 1.0)), classes, ann_file=ann_file)
    # the samples' boxes were resized by (0.5, 0.25): undone with scale_factor
    from_samples = evaluate(samples((0.5, 0.25)), classes)
    assert from_file == pytest.approx(expected, abs=1e-9)
    assert from_samples == pytest.approx(expected, abs=1e-6)
    assert expected['bbox_mAP'] > 0.1  # a non-trivial case


def test_through_evaluator_with_prefix_and_cat_ids(tmp_path):
    init_default_scope('mmfusion')
    ann_file = write_coco(
        tmp_path / 'a.json', [dict(id=3, width=200, height=200)],
        [dict(id=1, image_id=3, category_id=8, bbox=xywh(MEDIUM))],  # no area: box area
        [dict(id=8, name='x'), dict(id=9, name='y')])
    evaluator = Evaluator([dict(type='CocoMetric', ann_file=ann_file)])
    # cat_ids in the metainfo say label 1 is category 8
    evaluator.dataset_meta = dict(classes=('y', 'x'), cat_ids=(9, 8))
    sample = MultiModalDataSample(metainfo=dict(img_id=3, ori_shape=(200, 200)))
    sample.pred_instances = InstanceData(bboxes=torch.tensor([MEDIUM], dtype=torch.float32),
                                         scores=torch.tensor([0.5]), labels=torch.tensor([1]))
    evaluator.process([sample])
    metrics = evaluator.evaluate(1)
    assert set(metrics) == {f'coco/{key}' for key in KEYS}
    assert metrics['coco/bbox_mAP'] == pytest.approx(1.0)
    assert metrics['coco/bbox_mAP_m'] == pytest.approx(1.0)


# --- errors -------------------------------------------------------------------

def test_ann_file_errors_name_the_problem(tmp_path):
    sample = det_sample([MEDIUM], [0], [MEDIUM], [0.9], [0], img_id=5)
    with pytest.raises(AnnotationFileNotFoundError, match='missing.json'):
        evaluate([sample], ann_file=str(tmp_path / 'missing.json'))
    bad = tmp_path / 'bad.json'
    bad.write_text('{"images": [')
    with pytest.raises(AnnotationError, match='not valid JSON'):
        evaluate([sample], ann_file=str(bad))
    ann_file = write_coco(tmp_path / 'one.json', [dict(id=1)], [],
                          [dict(id=1, name='circle'), dict(id=2, name='square')])
    with pytest.raises(AnnotationError, match=r'img_id \[5\]'):
        evaluate([sample], ann_file=ann_file)
    with pytest.raises(AnnotationError, match="classes \\['cube'\\]"):
        evaluate([det_sample([], [], img_id=1)], classes=('circle', 'cube'), ann_file=ann_file)
    twice = [det_sample([], [], img_id=1), det_sample([], [], img_id=1)]
    with pytest.raises(ValueError, match='ann_file=None'):
        evaluate(twice, ann_file=ann_file)


def test_sample_errors_name_the_problem():
    with pytest.raises(ValueError, match=r'pred_instances labels \[2\]'):
        evaluate([det_sample([MEDIUM], [0], [MEDIUM], [0.9], [2], img_path='a.png')])
    with pytest.raises(ValueError, match='flipped'):
        evaluate([det_sample([MEDIUM], [0], flip=True)])
    sample = det_sample([MEDIUM], [0])
    del sample['pred_instances']
    with pytest.raises(ValueError, match='pred_instances'):
        evaluate([sample])
