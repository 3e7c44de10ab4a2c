"""COCO box mAP (pycocotools) for MMEngine evaluators, and COCO results files."""
import contextlib
import copy
import io
import json
import os
import os.path as osp
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.fileio import dump
from mmengine.logging import print_log
from mmengine.structures import BaseDataElement
from terminaltables import AsciiTable

from mmfusion.errors import AnnotationError, AnnotationFileNotFoundError, ConfigError
from mmfusion.registry import METRICS

__all__ = ['CocoMetric']

# metric name -> index into COCOeval.stats (pycocotools' summarize order)
SUMMARY_KEYS = {'bbox_mAP': 0, 'bbox_mAP_50': 1, 'bbox_mAP_75': 2, 'bbox_mAP_s': 3,
                'bbox_mAP_m': 4, 'bbox_mAP_l': 5}


def _as_dict(value: Any) -> Any:
    return value.to_dict() if isinstance(value, BaseDataElement) else value


def _describe(sample: dict) -> str:
    """Which sample this is, for error messages."""
    for key in ('img_path', 'img_id', 'image_id', 'ref_id'):
        if sample.get(key) is not None:
            return f'{key}={sample[key]!r}'
    return 'sample without img_path'


def _image_id(sample: dict) -> Any:
    """The COCO image id of a sample: metainfo ``img_id`` (or ``image_id``)."""
    for key in ('img_id', 'image_id'):
        if sample.get(key) is not None:
            value = sample[key]
            return int(value) if isinstance(value, (int, np.integer)) else value
    return None


def _array(value: Any, dtype, shape_tail: tuple, what: str, sample: dict) -> np.ndarray:
    """A tensor/array/list as a NumPy array of shape ``(N, *shape_tail)``."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    array = np.asarray(value, dtype=dtype)
    if array.size == 0:
        return array.reshape((0, ) + shape_tail)
    if array.ndim != 1 + len(shape_tail) or array.shape[1:] != shape_tail:
        expected = '(N, 4)' if shape_tail else '(N,)'
        raise ValueError(f'CocoMetric: {what} must have shape {expected} ({_describe(sample)}), '
                         f'got {array.shape}')
    return array


def _instances(sample: dict, key: str) -> dict:
    """``sample[key]`` (an InstanceData as a dict) with bboxes (N, 4) and labels (N,)."""
    field = _as_dict(sample.get(key))
    if not isinstance(field, dict) or field.get('bboxes') is None or field.get('labels') is None:
        raise ValueError(f'CocoMetric needs `{key}` with `bboxes` and `labels` in every data '
                         f'sample ({_describe(sample)}), got keys {sorted(sample)}')
    bboxes = _array(field['bboxes'], np.float64, (4, ), f'{key}.bboxes', sample)
    labels = _array(field['labels'], np.int64, (), f'{key}.labels', sample)
    if len(labels) != len(bboxes):
        raise ValueError(f'CocoMetric: {key} has {len(bboxes)} bboxes but {len(labels)} labels '
                         f'({_describe(sample)})')
    return {'bboxes': bboxes, 'labels': labels, 'field': field}


def _gt_from_sample(sample: dict) -> dict:
    """Ground-truth boxes of a sample in original-image coordinates.

    Taken from the mmdet-style metainfo ``instances`` (the dataset's raw
    records: ``bbox`` xyxy in original coordinates, ``bbox_label``, optional
    ``ignore_flag``) when present, else from ``gt_instances`` (boxes after the
    pipeline) divided by ``scale_factor``; ``gt_instances.ignore_flags`` and
    mmdet's ``ignored_instances`` mark crowd/ignored boxes.
    """
    raw = sample.get('instances')
    if raw is not None:
        bboxes = np.asarray([inst['bbox'] for inst in raw], dtype=np.float64).reshape(-1, 4)
        labels = np.asarray([inst['bbox_label'] for inst in raw], dtype=np.int64)
        ignore = np.asarray([bool(inst.get('ignore_flag', False)) for inst in raw], dtype=bool)
        return {'bboxes': bboxes, 'labels': labels, 'ignore': ignore}

    if sample.get('flip'):
        raise ValueError(
            f'CocoMetric without ann_file rebuilds the ground truth from gt_instances by undoing '
            f'the resize (scale_factor), but sample {_describe(sample)} is flipped; remove the '
            'flip from the test pipeline or give the raw boxes as metainfo `instances`')
    gt = _instances(sample, 'gt_instances')
    ignore = np.zeros(len(gt['labels']), dtype=bool)
    if gt['field'].get('ignore_flags') is not None:
        ignore = _array(gt['field']['ignore_flags'], bool, (), 'gt_instances.ignore_flags',
                        sample)
        if len(ignore) != len(gt['labels']):
            raise ValueError(f'CocoMetric: gt_instances.ignore_flags has {len(ignore)} values '
                             f'for {len(gt["labels"])} boxes ({_describe(sample)})')
    bboxes, labels = gt['bboxes'], gt['labels']
    if sample.get('ignored_instances') is not None:
        ignored = _instances(sample, 'ignored_instances')
        bboxes = np.concatenate([bboxes, ignored['bboxes']])
        labels = np.concatenate([labels, ignored['labels']])
        ignore = np.concatenate([ignore, np.ones(len(ignored['labels']), dtype=bool)])
    scale = sample.get('scale_factor')
    if scale is not None:
        w_scale, h_scale = (float(s) for s in np.asarray(scale, dtype=np.float64).reshape(-1)[:2])
        bboxes = bboxes / np.array([w_scale, h_scale, w_scale, h_scale])
    return {'bboxes': bboxes, 'labels': labels, 'ignore': ignore}


def _xywh(bbox: np.ndarray) -> list[float]:
    x1, y1, x2, y2 = (float(v) for v in bbox)
    return [x1, y1, x2 - x1, y2 - y1]


def _read_coco(ann_file: str, need_annotations: bool = True) -> dict:
    """A COCO instances json as a dict, with clear errors for a bad file.

    ``need_annotations=False`` also accepts an image-info file without
    ``annotations`` (COCO test-dev), as for ``format_only``.
    """
    if not osp.isfile(ann_file):
        raise AnnotationFileNotFoundError(f'CocoMetric: ann_file {ann_file!r} does not exist; '
                                          'set ann_file to a COCO instances json, or to None '
                                          'to build the ground truth from the data samples')
    try:
        with open(ann_file, encoding='utf-8') as f:
            dataset = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise AnnotationError(f'CocoMetric: ann_file {ann_file!r} is not valid JSON: '
                              f'{err}') from None
    if not isinstance(dataset, dict):
        raise AnnotationError(f'CocoMetric: ann_file {ann_file!r} must hold a COCO dict, got '
                              f'{type(dataset).__name__}')
    if not need_annotations:
        dataset.setdefault('annotations', [])
    for key in ('images', 'annotations', 'categories'):
        if not isinstance(dataset.get(key), list):
            raise AnnotationError(f'CocoMetric: ann_file {ann_file!r} has no list '
                                  f'{key!r}; expected a COCO instances file')
    for index, ann in enumerate(dataset['annotations']):
        if not isinstance(ann, dict) or not {'image_id', 'category_id', 'bbox'} <= set(ann):
            raise AnnotationError(f'CocoMetric: annotation {index} of {ann_file!r} needs '
                                  f'image_id, category_id and bbox, got {ann!r:.200}')
        ann.setdefault('id', index + 1)
        ann.setdefault('iscrowd', 0)
        # the area ranges (small/medium/large) use the annotation's area: the
        # mask area in COCO; without a mask, the box area
        ann.setdefault('area', float(ann['bbox'][2]) * float(ann['bbox'][3]))
    return dataset


def _coco_api(dataset: dict):
    from pycocotools.coco import COCO
    coco = COCO()
    coco.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):  # "creating index..."
        coco.createIndex()
    return coco


@METRICS.register_module()
class CocoMetric(BaseMetric):
    """COCO box mAP, computed by pycocotools' ``COCOeval`` (iouType 'bbox').

    Ground truth comes from one of two places:

    * ``ann_file``: a COCO instances json; each data sample's metainfo
      ``img_id`` (or ``image_id``) names its COCO image, only the images of
      the evaluated samples are scored (so a subset of the file can be
      evaluated), and ``iscrowd`` marks crowd boxes. Annotations without an
      ``area`` get their box area. Each image may appear once.
    * no ``ann_file``: built from the data samples, each sample its own COCO
      image (so several samples may share a picture with different boxes, as
      in referring detection, where each expression selects its own
      objects). The boxes are the metainfo ``instances`` (mmdet's raw
      records: ``bbox`` xyxy in original coordinates, ``bbox_label``,
      ``ignore_flag``) when present, else ``gt_instances.bboxes`` divided by
      ``scale_factor`` (the test pipeline may resize and pad, not flip or
      crop); ``gt_instances.ignore_flags`` or ``ignored_instances`` mark
      boxes to ignore (crowd). Box areas are ``w * h``.

    Predictions are ``pred_instances``: ``bboxes`` ``(K, 4)`` xyxy in
    original-image coordinates, ``scores`` ``(K,)``, ``labels`` ``(K,)``
    (indices into the dataset's ``classes``). Label ``i`` is the COCO
    category ``cat_ids[i]``, where ``cat_ids`` is the dataset metainfo
    ``cat_ids`` if given; else, with ``ann_file``, the category of the file
    named ``classes[i]`` (the sorted category ids when the dataset has no
    ``classes``); else ``i``. Only the categories of ``cat_ids`` are scored.

    Returned metrics (prefix ``coco/``), fractions in [0, 1] as pycocotools
    and mmdet report them: ``bbox_mAP`` (IoU 0.50:0.95), ``bbox_mAP_50``,
    ``bbox_mAP_75``, ``bbox_mAP_s``, ``bbox_mAP_m``, ``bbox_mAP_l`` (areas
    < 32², 32²-96², > 96², at 100 detections per image). A value is -1 when
    it is undefined because no ground-truth box falls in it (e.g.
    ``bbox_mAP_l`` of a dataset of small objects), pycocotools' convention;
    classes without ground truth are left out of the means. No prediction at
    all gives 0 (not an error). With ``classwise=True`` a table of every
    class's AP, AP50, AP75, APs/m/l is logged ('n/a' for -1).

    Image ids: with ``ann_file``, the samples' ``img_id``. Without it, also
    the samples' ``img_id`` when every sample has an int one and no two share
    it (one sample per image, as in detection); otherwise (several samples per
    picture, as in referring detection) the samples are numbered 1..N in
    dataset order.

    Results files (argument names as in mmdet's ``CocoMetric``): with
    ``outfile_prefix``, the main process writes ``<outfile_prefix>.bbox.json``,
    the COCO detection results format
    ``[{"image_id": int, "category_id": int, "bbox": [x, y, w, h], "score":
    float}, ...]`` (original-image pixels, the ids above), which
    ``COCO(gt).loadRes(path)`` and the COCO evaluation server read. Without
    ``ann_file`` it also writes the ground truth it built from the samples
    as ``<outfile_prefix>.gt.json`` (a COCO instances file with the same
    image and category ids), so the results can be rescored with
    pycocotools alone, as mmdet does. The metric supports boxes only, so no
    segmentation results are written.

    Args:
        ann_file (str, optional): Path of a COCO instances json; ``None``
            builds the ground truth from the data samples. With
            ``format_only`` an image-info json without ``annotations`` (COCO
            test-dev) is enough: it gives the category ids.
        classwise (bool): Log the per-class table. Defaults to False.
        format_only (bool): Only write the results file (needs
            ``outfile_prefix``), compute no mAP and need no ground truth,
            e.g. for a test split without annotations. Defaults to False.
        outfile_prefix (str, optional): Path prefix of the results files
            (folders are created); ``None`` writes nothing. Defaults to None.
        collect_device (str): Device used to collect results across ranks.
        prefix (str, optional): ``None`` uses 'coco'.
    """

    default_prefix: str | None = 'coco'

    def __init__(self, ann_file: str | None = None, classwise: bool = False,
                 format_only: bool = False, outfile_prefix: str | None = None,
                 collect_device: str = 'cpu', prefix: str | None = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if ann_file is not None and not isinstance(ann_file, str):
            raise ConfigError(f'CocoMetric: ann_file must be a path or None, got {ann_file!r}')
        if not isinstance(format_only, bool):
            raise ConfigError(f'CocoMetric: format_only must be True or False, got '
                              f'{format_only!r}')
        if outfile_prefix is not None and (not isinstance(outfile_prefix, str)
                                           or not outfile_prefix):
            raise ConfigError(f'CocoMetric: outfile_prefix must be a path prefix (str) or None, '
                              f'got {outfile_prefix!r}')
        if format_only and outfile_prefix is None:
            raise ConfigError('CocoMetric: format_only=True only writes the results file, so it '
                              'needs outfile_prefix, e.g. '
                              'test_evaluator.outfile_prefix=work_dirs/det/test_results')
        self.ann_file = ann_file
        self.classwise = classwise
        self.format_only = format_only
        self.outfile_prefix = outfile_prefix
        # loaded on first use: the dataset may write the file when it is built
        self._coco_gt = None

    # -- collecting --------------------------------------------------------
    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        """Keep every sample's predictions (and ground truth without ann_file)."""
        for sample in data_samples:
            sample = _as_dict(sample)
            if not isinstance(sample, dict):
                raise TypeError(f'CocoMetric: a data sample must be a dict or a data element, '
                                f'got {type(sample).__name__}')
            pred = _instances(sample, 'pred_instances')
            field = pred.pop('field')
            if field.get('scores') is None:
                raise ValueError(f'CocoMetric needs `pred_instances.scores` '
                                 f'({_describe(sample)})')
            pred['scores'] = _array(field['scores'], np.float64, (), 'pred_instances.scores',
                                    sample)
            if len(pred['scores']) != len(pred['labels']):
                raise ValueError(f'CocoMetric: pred_instances has {len(pred["labels"])} labels '
                                 f'but {len(pred["scores"])} scores ({_describe(sample)})')
            result = {'img_id': _image_id(sample), 'pred': pred,
                      'ori_shape': sample.get('ori_shape'), 'name': _describe(sample)}
            if sample.get('img_path') is not None:
                result['file_name'] = osp.basename(str(sample['img_path']))
            if self.ann_file is None:
                # a split without annotations can only be formatted
                if not self.format_only:
                    result['gt'] = _gt_from_sample(sample)
            elif result['img_id'] is None:
                raise ValueError(f'CocoMetric with ann_file needs the metainfo `img_id` of '
                                 f'every sample ({_describe(sample)}); add it to the meta_keys '
                                 'of the packing transform')
            self.results.append(result)

    # -- ground truth and categories ---------------------------------------
    def _gt_from_file(self, results: list[dict]):
        if self._coco_gt is None:
            self._coco_gt = _coco_api(_read_coco(self.ann_file,
                                                 need_annotations=not self.format_only))
        img_ids = [r['img_id'] for r in results]
        if len(set(img_ids)) != len(img_ids):
            repeated = sorted({i for i in img_ids if img_ids.count(i) > 1}, key=str)[:10]
            raise ValueError(f'CocoMetric: images {repeated} were evaluated more than once; with '
                             f'ann_file each COCO image may appear once. For samples that share '
                             'an image (referring detection) set ann_file=None')
        unknown = [i for i in img_ids if i not in self._coco_gt.imgs]
        if unknown:
            raise AnnotationError(f'CocoMetric: img_id {unknown[:10]} not in the images of '
                                  f'ann_file {self.ann_file!r}')
        return self._coco_gt, img_ids

    @staticmethod
    def _sample_image_ids(results: list[dict]) -> list[int]:
        """COCO image ids without ann_file: the samples' own ``img_id`` when they
        are distinct ints, else 1..N (several samples share a picture)."""
        ids = [r['img_id'] for r in results]
        if all(isinstance(i, int) for i in ids) and len(set(ids)) == len(ids):
            return ids
        return list(range(1, len(results) + 1))

    def _gt_from_results(self, results: list[dict], cat_ids: list[int], names: list[str]):
        images, annotations = [], []
        for img_id, result in zip(self._sample_image_ids(results), results):
            image = {'id': img_id}
            if result.get('file_name') is not None:
                image['file_name'] = result['file_name']
            if result['ori_shape'] is not None:
                image['height'], image['width'] = (int(v) for v in result['ori_shape'][:2])
            images.append(image)
            gt = result['gt']
            self._check_labels(gt['labels'], cat_ids, 'gt_instances', result['name'])
            for bbox, label, ignore in zip(gt['bboxes'], gt['labels'], gt['ignore']):
                xywh = _xywh(bbox)
                annotations.append({'id': len(annotations) + 1, 'image_id': img_id,
                                    'category_id': cat_ids[label], 'bbox': xywh,
                                    'area': xywh[2] * xywh[3], 'iscrowd': int(ignore)})
        categories = [{'id': cid, 'name': name} for cid, name in zip(cat_ids, names)]
        dataset = {'images': images, 'annotations': annotations, 'categories': categories}
        return _coco_api(dataset), [image['id'] for image in images]

    def _categories(self, results: list[dict], coco_gt=None) -> tuple[list[int], list[str]]:
        """``cat_ids`` (label index -> COCO category id) and the class names."""
        meta = self.dataset_meta or {}
        classes = meta.get('classes')
        cat_ids = meta.get('cat_ids')
        if cat_ids is not None:
            cat_ids = [int(c) for c in cat_ids]
            if classes is not None and len(classes) != len(cat_ids):
                raise ConfigError(f'CocoMetric: the dataset metainfo has {len(classes)} classes '
                                  f'but {len(cat_ids)} cat_ids')
        elif coco_gt is not None:
            by_name = {cat['name']: cat['id'] for cat in coco_gt.dataset['categories']}
            if classes is None:
                cat_ids = sorted(by_name.values())
            else:
                missing = [name for name in classes if name not in by_name]
                if missing:
                    raise AnnotationError(f'CocoMetric: classes {missing} of the dataset are not '
                                          f'categories of ann_file {self.ann_file!r} (it has '
                                          f'{sorted(by_name)}); a dataset with its own classes '
                                          '(e.g. referring detection) needs ann_file=None')
                cat_ids = [by_name[name] for name in classes]
        else:
            if classes is not None:
                num_classes = len(classes)
            else:  # no metainfo: the largest label seen decides
                labels = [r['pred']['labels'] for r in results] + [r['gt']['labels']
                                                                   for r in results if 'gt' in r]
                num_classes = 1 + max((int(x.max()) for x in labels if len(x)), default=0)
            cat_ids = list(range(num_classes))
        if len(set(cat_ids)) != len(cat_ids):
            raise ConfigError(f'CocoMetric: the category ids {cat_ids} repeat an id; each class '
                              'needs its own category')
        if coco_gt is not None:
            unknown = [c for c in cat_ids if c not in coco_gt.cats]
            if unknown:
                raise AnnotationError(f'CocoMetric: cat_ids {unknown} are not categories of '
                                      f'ann_file {self.ann_file!r}')
            names = [str(coco_gt.cats[c].get('name', c)) for c in cat_ids]
        elif classes is not None:
            names = [str(name) for name in classes]
        else:
            names = [str(c) for c in cat_ids]
        return cat_ids, names

    @staticmethod
    def _check_labels(labels: np.ndarray, cat_ids: list[int], what: str, name: str) -> None:
        bad = labels[(labels < 0) | (labels >= len(cat_ids))]
        if len(bad):
            raise ValueError(f'CocoMetric: {what} labels {sorted(set(bad.tolist()))} of {name} '
                             f'are outside the {len(cat_ids)} classes of the dataset')

    # -- results files -------------------------------------------------------
    def _detections(self, results: list[dict], img_ids: list[int],
                    cat_ids: list[int]) -> list[dict]:
        """Every prediction as a COCO result record (xywh, COCO ids)."""
        detections = []
        for img_id, result in zip(img_ids, results):
            pred = result['pred']
            self._check_labels(pred['labels'], cat_ids, 'pred_instances', result['name'])
            for bbox, score, label in zip(pred['bboxes'], pred['scores'], pred['labels']):
                detections.append({'image_id': img_id, 'category_id': cat_ids[int(label)],
                                   'bbox': _xywh(bbox), 'score': float(score)})
        return detections

    def results2json(self, detections: list[dict], gt_dataset: dict | None = None
                     ) -> dict[str, str]:
        """Write ``<outfile_prefix>.bbox.json`` (and ``.gt.json`` from ``gt_dataset``).

        Args:
            detections: COCO result records (see :meth:`_detections`).
            gt_dataset: The COCO instances dict built from the samples, or
                ``None`` when the ground truth is a file already (or absent).

        Returns:
            dict[str, str]: ``{'bbox': path}`` and, with ``gt_dataset``,
            ``'gt': path``, as mmdet's ``result_files``.
        """
        folder = osp.dirname(self.outfile_prefix)
        if folder:
            os.makedirs(folder, exist_ok=True)
        files = {'bbox': f'{self.outfile_prefix}.bbox.json'}
        dump(detections, files['bbox'])
        if gt_dataset is not None:
            files['gt'] = f'{self.outfile_prefix}.gt.json'
            dump(gt_dataset, files['gt'])
        print_log(f'CocoMetric: {len(detections)} detections written to {files["bbox"]}'
                  + (f', the ground truth to {files["gt"]}' if 'gt' in files else ''),
                  logger='current')
        return files

    # -- scoring -------------------------------------------------------------
    def compute_metrics(self, results: list[dict]) -> dict[str, float]:
        """COCO box mAP over all samples (fractions, -1 where undefined); writes
        the results files first if asked to, and only them with ``format_only``."""
        from pycocotools.cocoeval import COCOeval
        if not results:
            raise ValueError('CocoMetric received no samples to evaluate')
        if self.ann_file is not None:
            coco_gt, img_ids = self._gt_from_file(results)
            cat_ids, names = self._categories(results, coco_gt)
        elif self.format_only:
            cat_ids, names = self._categories(results)
            coco_gt, img_ids = None, self._sample_image_ids(results)
        else:
            cat_ids, names = self._categories(results)
            coco_gt, img_ids = self._gt_from_results(results, cat_ids, names)

        detections = self._detections(results, img_ids, cat_ids)
        if self.outfile_prefix is not None:
            # before COCOeval, which adds an 'ignore' key to the ground-truth records
            built_gt = coco_gt.dataset if self.ann_file is None and coco_gt is not None else None
            self.results2json(detections, built_gt)
        if self.format_only:
            return {}

        log = io.StringIO()
        with contextlib.redirect_stdout(log):
            if detections:
                coco_dt = coco_gt.loadRes(detections)
            else:
                # loadRes fails on an empty list; no detection scores 0 where
                # there is ground truth (and -1 where there is none)
                coco_dt = _coco_api({'images': list(coco_gt.dataset['images']),
                                     'categories': copy.deepcopy(coco_gt.dataset['categories']),
                                     'annotations': []})
            coco_eval = COCOeval(coco_gt, coco_dt, 'bbox')
            coco_eval.params.imgIds = img_ids
            coco_eval.params.catIds = cat_ids
            coco_eval.evaluate()
            coco_eval.accumulate()
        summary = io.StringIO()
        with contextlib.redirect_stdout(summary):
            coco_eval.summarize()
        print_log(f'CocoMetric: {len(results)} images, {len(detections)} detections\n'
                  + summary.getvalue(), logger='current')

        metrics = {key: float(coco_eval.stats[i]) for key, i in SUMMARY_KEYS.items()}
        if self.classwise:
            self._log_classwise(coco_eval, cat_ids, names)
        return metrics

    @staticmethod
    def _log_classwise(coco_eval, cat_ids: list[int], names: list[str]) -> None:
        """Log AP, AP50, AP75, APs, APm, APl of every class ('n/a' for -1)."""
        # precision: (IoU thresholds, recall points, categories, area ranges,
        # max dets); COCOeval sorts catIds, so look each category up
        precision = coco_eval.eval['precision']
        column = {cid: k for k, cid in enumerate(coco_eval.params.catIds)}
        iou_thrs = list(np.round(coco_eval.params.iouThrs, 2))

        def ap(k: int, iou: float | None, area: int) -> str:
            values = precision[:, :, k, area, -1]
            if iou is not None:
                values = values[iou_thrs.index(iou)]
            values = values[values > -1]
            return f'{float(np.mean(values)):.3f}' if values.size else 'n/a'

        rows = [['category', 'AP', 'AP50', 'AP75', 'APs', 'APm', 'APl']]
        for cid, name in zip(cat_ids, names):
            k = column[cid]
            rows.append([name, ap(k, None, 0), ap(k, 0.5, 0), ap(k, 0.75, 0), ap(k, None, 1),
                         ap(k, None, 2), ap(k, None, 3)])
        print_log('\n' + AsciiTable(rows, title='COCO bbox AP per class').table,
                  logger='current')
