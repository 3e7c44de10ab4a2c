"""Result files of the metrics: VQAv2 answers (VQAAccuracy) and COCO detections
(CocoMetric), written through MMEngine's Evaluator and rescored by pycocotools."""
import json
from collections import Counter
from os.path import join

import numpy as np
import pytest
import torch
from mmengine.evaluator import Evaluator
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from mmfusion.errors import ConfigError
from mmfusion.evaluation.functional import normalize_answer
from mmfusion.evaluation.metrics import CocoMetric, VQAAccuracy
from mmfusion.structures import MultiModalDataSample

KEYS = ('bbox_mAP', 'bbox_mAP_50', 'bbox_mAP_75', 'bbox_mAP_s', 'bbox_mAP_m', 'bbox_mAP_l')


def read_json(path):
    with open(path, encoding='utf-8') as f:
        return json.load(f)


def evaluator(**metric):
    init_default_scope('mmfusion')
    return Evaluator([metric])


# --- VQA -----------------------------------------------------------------------

def vqa_sample(qid, pred, gt=None, answer_type='other'):
    sample = MultiModalDataSample(metainfo=dict(question_id=qid, answer_type=answer_type))
    sample.pred_answer = pred
    if gt is not None:
        sample.gt_answers = gt
    return sample


def test_vqa_results_file_has_the_official_format_and_the_metric_is_unchanged(tmp_path):
    prefix = str(tmp_path / 'sub' / 'vqa_results')
    ev = evaluator(type='VQAAccuracy', outfile_prefix=prefix)
    samples = [vqa_sample(np.int64(458752000), 'Two', ['2'] * 3 + ['3'] * 7, 'number'),
               vqa_sample(torch.tensor(17), 'yes', ['yes'] * 10, 'yes/no'),
               vqa_sample(5, 'a red car', ['red car'] + ['blue car'] * 9)]
    ev.process(samples[:2])
    ev.process(samples[2:])
    metrics = ev.evaluate(3)
    assert metrics['vqa/acc'] == pytest.approx((90 + 100 + 30) / 3)
    results = read_json(prefix + '.json')
    # ids as plain JSON ints, answers raw (the official evaluation normalises them)
    assert results == [{'question_id': 458752000, 'answer': 'Two'},
                       {'question_id': 17, 'answer': 'yes'},
                       {'question_id': 5, 'answer': 'a red car'}]


def test_vqa_format_only_needs_no_answers_and_returns_nothing(tmp_path):
    prefix = str(tmp_path / 'test_dev')
    ev = evaluator(type='VQAAccuracy', format_only=True, outfile_prefix=prefix)
    ev.process([vqa_sample(1, 'yes'), vqa_sample(2, 'blue')])
    assert ev.evaluate(2) == {}
    assert read_json(prefix + '.json') == [{'question_id': 1, 'answer': 'yes'},
                                           {'question_id': 2, 'answer': 'blue'}]


def test_vqa_result_file_errors_name_the_problem(tmp_path):
    with pytest.raises(ConfigError, match='outfile_prefix'):
        VQAAccuracy(format_only=True)
    with pytest.raises(ConfigError, match='outfile_prefix'):
        VQAAccuracy(outfile_prefix=3)
    with pytest.raises(ConfigError, match='format_only'):
        VQAAccuracy(format_only='yes', outfile_prefix='x')
    metric = VQAAccuracy(format_only=True, outfile_prefix=str(tmp_path / 'r'))
    sample = MultiModalDataSample()
    sample.pred_answer = 'yes'
    with pytest.raises(ValueError, match='integer `question_id`'):
        metric.process(None, [sample.to_dict()])
    metric.process(None, [vqa_sample(4, 'yes').to_dict(), vqa_sample(4, 'no').to_dict()])
    with pytest.raises(ValueError, match=r'question_id \[4\] evaluated more than once'):
        metric.compute_metrics(metric.results)
    # without format_only an unanswered split still says what to do
    metric = VQAAccuracy()
    with pytest.raises(ValueError, match='format_only=True'):
        metric.process(None, [vqa_sample(4, 'yes').to_dict()])


# --- COCO ----------------------------------------------------------------------

def det_sample(img_id, pred_boxes, scores, labels, gt_boxes=None, gt_labels=None, **meta):
    sample = MultiModalDataSample(metainfo=dict(img_id=img_id, ori_shape=(200, 200), **meta))
    if gt_boxes is not None:
        sample.gt_instances = InstanceData(
            bboxes=torch.tensor(np.asarray(gt_boxes), dtype=torch.float32).reshape(-1, 4),
            labels=torch.tensor(np.asarray(gt_labels), dtype=torch.long).reshape(-1))
    sample.pred_instances = InstanceData(
        bboxes=torch.tensor(np.asarray(pred_boxes), dtype=torch.float32).reshape(-1, 4),
        scores=torch.tensor(np.asarray(scores), dtype=torch.float32).reshape(-1),
        labels=torch.tensor(np.asarray(labels), dtype=torch.long).reshape(-1))
    return sample


def random_detection_set(seed, img_ids, num_classes=3):
    """Ground truth (xyxy, label) and noisy detections on 200x200 images."""
    rng = np.random.default_rng(seed)
    scenes = []
    for img_id in img_ids:
        n = int(rng.integers(1, 5))
        xy = rng.uniform(0, 150, (n, 2))
        boxes = np.concatenate([xy, np.minimum(xy + rng.uniform(5, 120, (n, 2)), 200)], 1)
        boxes = boxes.round(1)
        labels = rng.integers(0, num_classes, n)
        keep = rng.random(n) < 0.8
        pred = (boxes + rng.normal(0, 4, (n, 4)))[keep]
        pred_labels = np.where(rng.random(n) < 0.8, labels, (labels + 1) % num_classes)[keep]
        scenes.append(dict(img_id=img_id, boxes=boxes, labels=labels, pred=pred,
                           pred_labels=pred_labels, scores=rng.random(len(pred))))
    return scenes


def xywh(box):
    return [float(box[0]), float(box[1]), float(box[2] - box[0]), float(box[3] - box[1])]


def test_coco_results_use_the_files_image_and_category_ids(tmp_path):
    classes = ('circle', 'square', 'triangle')
    # category ids neither contiguous nor in class order, image ids large and sparse
    cat_ids = {'triangle': 30, 'circle': 5, 'square': 12}
    scenes = random_detection_set(0, [391895, 522418, 184613, 318219])
    ann_file = str(tmp_path / 'instances.json')
    with open(ann_file, 'w') as f:
        json.dump({'images': [dict(id=s['img_id'], width=200, height=200) for s in scenes],
                   'categories': [dict(id=i, name=n) for n, i in cat_ids.items()],
                   'annotations': [dict(id=k, image_id=s['img_id'], bbox=xywh(b), iscrowd=0,
                                        area=xywh(b)[2] * xywh(b)[3],
                                        category_id=cat_ids[classes[label]])
                                   for k, (s, b, label) in enumerate(
                                       ((s, b, label) for s in scenes
                                        for b, label in zip(s['boxes'], s['labels'])),
                                       start=1)]}, f)
    prefix = str(tmp_path / 'out' / 'val')
    ev = evaluator(type='CocoMetric', ann_file=ann_file, outfile_prefix=prefix)
    ev.dataset_meta = dict(classes=classes)
    ev.process([det_sample(s['img_id'], s['pred'], s['scores'], s['pred_labels'])
                for s in scenes])
    metrics = ev.evaluate(len(scenes))

    detections = read_json(prefix + '.bbox.json')
    expected = [(s['img_id'], cat_ids[classes[label]]) for s in scenes for label in
                s['pred_labels']]
    assert [(d['image_id'], d['category_id']) for d in detections] == expected
    coco_gt = COCO(ann_file)
    coco_eval = COCOeval(coco_gt, coco_gt.loadRes(prefix + '.bbox.json'), 'bbox')
    coco_eval.evaluate()
    coco_eval.accumulate()
    coco_eval.summarize()
    for i, key in enumerate(KEYS):
        assert metrics[f'coco/{key}'] == pytest.approx(coco_eval.stats[i], abs=1e-12), key
    assert metrics['coco/bbox_mAP'] > 0.1
    # the ground truth is the file: no .gt.json beside it
    assert not (tmp_path / 'out' / 'val.gt.json').exists()


def test_coco_samples_sharing_an_image_are_numbered_and_the_gt_is_written(tmp_path):
    """Referring detection: two expressions on picture 7, each its own COCO image."""
    prefix = str(tmp_path / 'ref')
    ev = evaluator(type='CocoMetric', outfile_prefix=prefix)
    ev.dataset_meta = dict(classes=('object', ))
    box_a, box_b = [10, 10, 60, 60], [100, 100, 180, 150]
    ev.process([det_sample(7, [box_a, box_b], [0.9, 0.4], [0, 0], [box_a], [0],
                           img_path='data/7.png'),
                det_sample(7, [box_a, box_b], [0.95, 0.5], [0, 0], [box_b], [0],
                           img_path='data/7.png')])
    metrics = ev.evaluate(2)
    gt = read_json(prefix + '.gt.json')
    assert [img['id'] for img in gt['images']] == [1, 2]
    assert {img['file_name'] for img in gt['images']} == {'7.png'}
    assert [a['bbox'] for a in gt['annotations']] == [xywh(box_a), xywh(box_b)]
    assert {d['image_id'] for d in read_json(prefix + '.bbox.json')} == {1, 2}
    coco_gt = COCO(prefix + '.gt.json')
    coco_eval = COCOeval(coco_gt, coco_gt.loadRes(prefix + '.bbox.json'), 'bbox')
    coco_eval.evaluate()
    coco_eval.accumulate()
    coco_eval.summarize()
    assert metrics['coco/bbox_mAP'] == pytest.approx(coco_eval.stats[0], abs=1e-12)
    assert 0 < metrics['coco/bbox_mAP'] < 1


def test_coco_format_only_needs_no_ground_truth(tmp_path):
    # an image-info file as COCO test-dev's: images and categories, no annotations
    info_file = str(tmp_path / 'image_info.json')
    with open(info_file, 'w') as f:
        json.dump({'images': [dict(id=42, width=200, height=200)],
                   'categories': [dict(id=3, name='a'), dict(id=9, name='b')]}, f)
    prefix = str(tmp_path / 'test_dev')
    ev = evaluator(type='CocoMetric', ann_file=info_file, format_only=True,
                   outfile_prefix=prefix)
    ev.dataset_meta = dict(classes=('b', 'a'))
    ev.process([det_sample(42, [[0, 0, 10, 20], [5, 5, 50, 50]], [0.5, 0.25], [0, 1])])
    assert ev.evaluate(1) == {}
    assert read_json(prefix + '.bbox.json') == [
        {'image_id': 42, 'category_id': 9, 'bbox': [0.0, 0.0, 10.0, 20.0], 'score': 0.5},
        {'image_id': 42, 'category_id': 3, 'bbox': [5.0, 5.0, 45.0, 45.0], 'score': 0.25}]

    # without a file: the samples' image ids, metainfo cat_ids, no gt needed
    prefix = str(tmp_path / 'no_file')
    ev = evaluator(type='CocoMetric', format_only=True, outfile_prefix=prefix)
    ev.dataset_meta = dict(classes=('a', 'b'), cat_ids=(11, 4))
    ev.process([det_sample(1000001, [[0, 0, 10, 10]], [0.75], [1]),
                det_sample(1000002, [[1, 1, 10, 10]], [0.5], [0])])
    assert ev.evaluate(2) == {}
    assert [(d['image_id'], d['category_id']) for d in read_json(prefix + '.bbox.json')] == \
        [(1000001, 4), (1000002, 11)]
    assert not (tmp_path / 'no_file.gt.json').exists()


def test_coco_result_file_config_errors():
    with pytest.raises(ConfigError, match='outfile_prefix'):
        CocoMetric(format_only=True)
    with pytest.raises(ConfigError, match='outfile_prefix'):
        CocoMetric(outfile_prefix='')
    with pytest.raises(ConfigError, match='format_only'):
        CocoMetric(format_only=1, outfile_prefix='x')


# --- one answer normalisation ----------------------------------------------------

def test_mmshapes_answers_agree_with_the_official_normalisation(mmshapes_root):
    """The MMShapes generator picks each ``multiple_choice_answer`` by majority
    over normalised annotator answers; with the official normalisation the
    vote gives the same answer, so the answers the metric scores and the
    generator's canonical answers are one vocabulary."""
    for split in ('train', 'val'):
        annotations = read_json(join(mmshapes_root, 'vqa',
                                     f'v2_mmshapes_{split}_annotations.json'))['annotations']
        for ann in annotations:
            votes = Counter(normalize_answer(a['answer']) for a in ann['answers'])
            assert votes.most_common(1)[0][0] == ann['multiple_choice_answer'], ann
