"""COCO-format detection with aligned extra modalities and referring expressions."""
import contextlib
import io
import math
import os.path as osp
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

from mmfusion.errors import AnnotationError, ConfigError
from mmfusion.registry import DATASETS

from .base import (
    BaseMultiModalDataset,
    check_record,
    describe_value,
    is_int,
    load_json,
    top_level_list,
)

REFERRING_CLASSES = ('object', )


def _is_number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def _is_path(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


def _is_bbox(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 4 and all(_is_number(v) for v in value)


def _is_segmentation(value: Any) -> bool:
    """COCO polygons ([[x1, y1, ...], ...]) or an RLE dict."""
    if isinstance(value, dict):
        return ('counts' in value and isinstance(value.get('size'), list)
                and len(value['size']) == 2)
    return isinstance(value, list) and all(
        isinstance(p, list) and len(p) >= 6 and len(p) % 2 == 0
        and all(_is_number(v) for v in p) for p in value)


def _is_positive_int(value: Any) -> bool:
    return is_int(value) and value > 0


IMAGE_FIELDS = dict(id=(is_int, 'an int'),
                    file_name=(_is_path, 'a file path (a non-empty string)'))
IMAGE_SIZE_FIELDS = dict(height=(_is_positive_int, 'a positive int'),
                         width=(_is_positive_int, 'a positive int'))
CATEGORY_FIELDS = dict(id=(is_int, 'an int'), name=(_is_path, 'a non-empty string'))
ANNOTATION_FIELDS = dict(id=(is_int, 'an int'), image_id=(is_int, 'an int'),
                         category_id=(is_int, 'an int'),
                         bbox=(_is_bbox, 'a list of 4 finite numbers [x, y, width, height]'))
MASK_FIELDS = dict(segmentation=(_is_segmentation, 'COCO polygons [[x1, y1, x2, y2, ...], ...] '
                                 'or an RLE {"counts": ..., "size": [h, w]}'))


def _check_unique(records: List[dict], key: str, where, what: str) -> None:
    first: Dict[Any, int] = {}
    for i, record in enumerate(records):
        if record[key] in first:
            raise AnnotationError(f'{where(i)}: {key} {record[key]!r} repeats {what}'
                                  f'[{first[record[key]]}]; expected unique {key}s')
        first[record[key]] = i


def _quiet_index(data: dict):
    """A pycocotools ``COCO`` index over already checked ``data`` (its own
    progress prints are dropped)."""
    from pycocotools.coco import COCO
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def load_coco(path: str, image_keys: Sequence[str] = (), need_annotations: bool = True,
              need_masks: bool = False):
    """Read and check a COCO instances file; return its pycocotools ``COCO`` index.

    Args:
        path: the JSON file.
        image_keys: keys every image record must hold a file path in (the
            extra modalities, e.g. ``depth_file``).
        need_annotations: the file must have an ``annotations`` list (an
            image-info file for inference may leave it out).
        need_masks: every annotation needs a ``segmentation`` and every image
            its ``height`` and ``width``.

    Raises :class:`AnnotationError` naming the file, the record
    (``images[i]``, ``annotations[j] (id ...)``, ``categories[k]``) and the
    field for: a missing or non-JSON file, a missing list or key, a value of
    the wrong type, repeated ids, an annotation of an unknown image or
    category, a box with zero or negative width or height, and no images.
    """
    what = 'COCO annotation file'
    data = load_json(path, what)
    images = top_level_list(data, 'images', path, what)
    if not images:
        raise AnnotationError(f'{what} {path}: "images" is empty; expected at least one image')
    categories = top_level_list(data, 'categories', path, what)
    annotations = (top_level_list(data, 'annotations', path, what)
                   if need_annotations or 'annotations' in data else [])

    image_fields = dict(IMAGE_FIELDS, **{k: (_is_path, 'a file path (a non-empty string)')
                                         for k in image_keys})
    if need_masks:
        image_fields.update(IMAGE_SIZE_FIELDS)
    for i, image in enumerate(images):
        check_record(image, f'{path}, images[{i}]', image_fields)
    _check_unique(images, 'id', lambda i: f'{path}, images[{i}]', 'images')
    for k, category in enumerate(categories):
        check_record(category, f'{path}, categories[{k}]', CATEGORY_FIELDS)
    for key in ('id', 'name'):
        _check_unique(categories, key, lambda k: f'{path}, categories[{k}]', 'categories')

    image_ids = {image['id'] for image in images}
    category_ids = sorted(c['id'] for c in categories)
    ann_fields = dict(ANNOTATION_FIELDS, **(MASK_FIELDS if need_masks else {}))
    for j, ann in enumerate(annotations):
        where = f'{path}, annotations[{j}]'
        if isinstance(ann, dict) and is_int(ann.get('id')):
            where += f' (id {ann["id"]})'
        check_record(ann, where, ann_fields)
        if ann['image_id'] not in image_ids:
            raise AnnotationError(f'{where}: image_id {ann["image_id"]} is not the id of any '
                                  f'record in "images"')
        if ann['category_id'] not in category_ids:
            shown = category_ids[:20] + (['...'] if len(category_ids) > 20 else [])
            raise AnnotationError(f'{where}: category_id {ann["category_id"]} is unknown; '
                                  f'expected one of the ids in "categories" {shown}')
        _x, _y, w, h = ann['bbox']
        if w <= 0 or h <= 0:
            raise AnnotationError(f'{where}: bbox {ann["bbox"]} has a width or height <= 0; '
                                  f'expected [x, y, width, height] (COCO boxes are xywh) with '
                                  f'positive width and height')
        if 'iscrowd' in ann and ann['iscrowd'] not in (0, 1):
            raise AnnotationError(f'{where}: iscrowd is {describe_value(ann["iscrowd"])}; '
                                  f'expected 0 or 1')
    _check_unique(annotations, 'id', lambda j: f'{path}, annotations[{j}]', 'annotations')
    return _quiet_index(dict(data, annotations=annotations))


def _sentences(ref: dict, where: str) -> List[str]:
    """The expressions of a ref: ``sentence`` (str) or RefCOCO's ``sentences``
    (list of str or of ``{"sent": str}``)."""
    if 'sentence' in ref:
        values = [ref['sentence']]
    elif isinstance(ref.get('sentences'), list) and ref['sentences']:
        values = [s.get('sent') if isinstance(s, dict) else s for s in ref['sentences']]
    else:
        raise AnnotationError(f'{where}: missing "sentence"; expected a referring expression '
                              f'(a string) in "sentence", or a non-empty "sentences" list')
    for value in values:
        if not (isinstance(value, str) and value.strip()):
            raise AnnotationError(f'{where}: a sentence is {describe_value(value)}; expected a '
                                  f'non-empty string')
    return values


def _ann_ids(ref: dict, where: str) -> List[int]:
    """The referred annotations: ``ann_ids`` (list) or RefCOCO's ``ann_id``."""
    if 'ann_ids' in ref:
        ids = ref['ann_ids']
        if not (isinstance(ids, list) and all(is_int(a) for a in ids)):
            raise AnnotationError(f'{where}: ann_ids is {describe_value(ids)}; expected a list '
                                  f'of annotation ids (ints)')
        return ids
    if is_int(ref.get('ann_id')):
        return [ref['ann_id']]
    raise AnnotationError(f'{where}: missing "ann_ids"; expected the list of the annotation '
                          f'ids the expression refers to')


def load_refs(path: str, coco) -> List[dict]:
    """Read and check a referring-expression file against a ``COCO`` index.

    The file is a JSON list of ``{ref_id, image_id, ann_ids, sentence}``
    (RefCOCO's ``ann_id`` and ``sentences`` are read too). Returns one dict
    ``{ref_id, image_id, ann_ids, text}`` per expression.

    Raises :class:`AnnotationError` naming the file, ``refs[i]`` and the
    field for a missing key, a value of the wrong type, an image that is not
    in the COCO file, an annotation id that is unknown or belongs to another
    image, and no refs at all.
    """
    what = 'refs file'
    refs = load_json(path, what)
    if not isinstance(refs, list):
        raise AnnotationError(f'{what} {path}: the file holds {describe_value(refs)}; expected '
                              f'a JSON list of {{ref_id, image_id, ann_ids, sentence}} objects')
    if not refs:
        raise AnnotationError(f'{what} {path}: the list is empty; expected at least one ref')
    samples = []
    for i, ref in enumerate(refs):
        where = f'{path}, refs[{i}]'
        check_record(ref, where, dict(ref_id=(is_int, 'an int'), image_id=(is_int, 'an int')))
        image_id = ref['image_id']
        if image_id not in coco.imgs:
            raise AnnotationError(f'{where}: image_id {image_id} is not the id of any image in '
                                  f'the COCO annotation file')
        ann_ids = _ann_ids(ref, where)
        for ann_id in ann_ids:
            ann = coco.anns.get(ann_id)
            if ann is None or ann['image_id'] != image_id:
                reason = ('is unknown' if ann is None
                          else f'belongs to image {ann["image_id"]}')
                raise AnnotationError(f'{where}: ann_ids holds {ann_id}, which {reason}; '
                                      f'expected ids of annotations of image {image_id}')
        for text in _sentences(ref, where):
            samples.append(dict(ref_id=ref['ref_id'], image_id=image_id, ann_ids=ann_ids,
                                text=text))
    return samples


def _join(root: Optional[str], path: str) -> str:
    return osp.join(root, path) if root and not osp.isabs(path) else path


@DATASETS.register_module()
class CocoDetDataset(BaseMultiModalDataset):
    """Detection samples from a COCO instances file, with aligned extra
    modalities and, optionally, referring expressions.

    One sample per image (or, with ``refs_file``, per referring expression).

    Args:
        ann_file: COCO instances JSON (``images``, ``annotations``,
            ``categories``), relative to ``data_root``.
        refs_file: a JSON list of ``{ref_id, image_id, ann_ids, sentence}``
            (RefCOCO-like; ``ann_id``/``sentences`` also read), relative to
            ``data_root``. Each expression becomes a sample with ``text`` and
            only the referred objects as ground truth, all of the single class
            ``'object'``.
        extra_modalities: modality name -> key of the image record that holds
            its file path relative to ``data_root``, e.g.
            ``dict(depth='depth_file')`` or ``dict(thermal='thermal_file')``;
            the sample gets ``<name>_path`` (read by ``LoadDepthFromFile``).
        with_mask: keep each object's ``segmentation`` as ``mask`` (decoded
            by ``LoadAnnotations(with_mask=True)``); then every annotation
            needs one and every image its height and width.
        filter_empty_gt: in training, leave out samples without any
            non-crowd object.
        data_prefix: ``dict(img_path=folder)`` that ``file_name`` is relative
            to (default: ``data_root``).
        metainfo: ``classes`` may name a subset (and order) of the classes;
            objects of the other classes are left out.
        on_bad_sample, check_files: see :class:`BaseMultiModalDataset`.

    Classes are the category names in id order; labels are contiguous
    (``bbox_label`` = index in ``classes``). Each sample: ``img_path``,
    ``img_id``, ``height``/``width`` (when the record has them),
    ``<name>_path`` per extra modality, ``instances`` (list of ``bbox`` xyxy,
    ``bbox_label``, ``ignore_flag`` (1 for crowd), ``ann_id`` and, with
    ``with_mask``, ``mask``) and, with refs, ``text`` and ``ref_id``.

    Raises :class:`~mmfusion.errors.AnnotationError` for bad files (see
    :func:`load_coco` and :func:`load_refs`) and for image or modality files
    that do not exist (with ``check_files``).
    """
    METAINFO = dict(task='detection')

    def __init__(self, ann_file: str, refs_file: Optional[str] = None,
                 extra_modalities: Optional[Dict[str, str]] = None, with_mask: bool = False,
                 filter_empty_gt: bool = False, data_prefix: Optional[dict] = None,
                 **kwargs) -> None:
        name = type(self).__name__
        extra_modalities = dict(extra_modalities or {})
        for modality, key in extra_modalities.items():
            if not (_is_path(modality) and _is_path(key)) or modality == 'img':
                raise ConfigError(f'{name}: extra_modalities must map a modality name (not '
                                  f"'img') to an image-record key, e.g. dict(depth='depth_file'); "
                                  f'got {modality!r}: {key!r}')
        if refs_file is not None and not _is_path(refs_file):
            raise ConfigError(f'{name}: refs_file must be a file path, got {refs_file!r}')
        self.refs_file = refs_file
        self.extra_modalities = extra_modalities
        self.with_mask = with_mask
        self.filter_empty_gt = filter_empty_gt
        self._wanted_classes = (kwargs.get('metainfo') or {}).get('classes')
        super().__init__(ann_file=ann_file, data_prefix=data_prefix or dict(img_path=''),
                         **kwargs)

    @property
    def refs_path(self) -> Optional[str]:
        """``refs_file`` joined to ``data_root``."""
        return None if self.refs_file is None else _join(self.data_root, self.refs_file)

    @property
    def annotation_source(self) -> str:
        return self.ann_file + (f', {self.refs_path}' if self.refs_file else '')

    # -- classes: hooks for datasets whose classes are not the categories ---

    def default_classes(self, category_names: List[str]) -> Tuple[str, ...]:
        """The dataset's classes from the category names (in id order)."""
        return REFERRING_CLASSES if self.refs_file else tuple(category_names)

    def class_name_of(self, ann: dict, category_name: str, where: str) -> str:
        """The class (a name in :meth:`default_classes`) of one annotation."""
        return REFERRING_CLASSES[0] if self.refs_file else category_name

    def _dataset_classes(self, category_names: List[str]) -> Tuple[str, ...]:
        """All classes the dataset can have (a segmentation dataset adds its background)."""
        return self.default_classes(category_names)

    def _resolve_classes(self, category_names: List[str]) -> Tuple[str, ...]:
        default = self._dataset_classes(category_names)
        if self._wanted_classes is None:
            return default
        wanted = tuple(str(c) for c in self._wanted_classes)
        unknown = [c for c in wanted if c not in default]
        if unknown or len(set(wanted)) != len(wanted):
            raise ConfigError(f'{type(self).__name__}: metainfo classes {list(wanted)} must be '
                              f'distinct names among the classes of {self.annotation_source}: '
                              f'{list(default)} (unknown: {unknown})')
        return wanted

    # -- samples ----------------------------------------------------------

    def _instance_label(self, ann: dict) -> Optional[int]:
        """Class index of an annotation; None if its class is not wanted."""
        where = f'{self.ann_file}, annotation id {ann["id"]}'
        name = self.class_name_of(ann, self._category_names[ann['category_id']], where)
        return self._class_index.get(name)

    def _image_info(self, image: dict) -> dict:
        info = dict(img_path=_join(self.data_prefix.get('img_path'), image['file_name']),
                    img_id=image['id'])
        for key in ('height', 'width'):
            if key in image:
                info[key] = image[key]
        for modality, key in self.extra_modalities.items():
            info[f'{modality}_path'] = _join(self.data_root, image[key])
        return info

    def _make_sample(self, image: dict, anns: List[dict],
                     referred: Optional[Set[int]]) -> dict:
        """The sample of an image; ``referred``: the ids of the objects a
        referring expression selects (None: all objects)."""
        info = self._image_info(image)
        instances = []
        for ann in anns:
            if referred is not None and ann['id'] not in referred:
                continue
            label = self._instance_label(ann)
            if label is None:
                continue
            x, y, w, h = ann['bbox']
            instance = dict(bbox=[x, y, x + w, y + h], bbox_label=label,
                            ignore_flag=int(ann.get('iscrowd', 0)), ann_id=ann['id'])
            if self.with_mask:
                instance['mask'] = ann['segmentation']
            instances.append(instance)
        info['instances'] = instances
        return info

    def required_image_keys(self) -> Tuple[str, ...]:
        """Keys every image record must hold a file path in."""
        return tuple(self.extra_modalities.values())

    def load_data_list(self) -> List[dict]:
        """Check the COCO (and refs) file and turn it into samples."""
        coco = load_coco(self.ann_file, image_keys=self.required_image_keys(),
                         need_annotations=not self.test_mode, need_masks=self.with_mask)
        categories = sorted(coco.dataset['categories'], key=lambda c: c['id'])
        self._category_names = {c['id']: c['name'] for c in categories}
        classes = self._resolve_classes([c['name'] for c in categories])
        self._metainfo['classes'] = classes
        self._class_index = {name: i for i, name in enumerate(classes)}

        data_list = []
        if self.refs_file:
            for ref in load_refs(self.refs_path, coco):
                image = coco.imgs[ref['image_id']]
                sample = self._make_sample(image, coco.imgToAnns.get(image['id'], []),
                                           set(ref['ann_ids']))
                sample.update(text=ref['text'], ref_id=ref['ref_id'])
                data_list.append(sample)
        else:
            for image in coco.dataset['images']:
                data_list.append(self._make_sample(image, coco.imgToAnns.get(image['id'], []),
                                                   None))
        self.check_files_exist(((i, key, value) for i, info in enumerate(data_list)
                                for key, value in info.items() if key.endswith('_path')),
                               lambda i: f'{self.annotation_source}, sample {i} '
                                         f'(image id {data_list[i]["img_id"]})')
        return data_list

    def filter_data(self) -> List[dict]:
        """With ``filter_empty_gt`` in training, the samples with a non-crowd object."""
        if self.test_mode or not self.filter_empty_gt:
            return self.data_list
        kept = [info for info in self.data_list
                if any(not inst['ignore_flag'] for inst in info['instances'])]
        if not kept:
            raise AnnotationError(f'{self.annotation_source}: no sample has a non-crowd object '
                                  f'of the classes {list(self._metainfo["classes"])}, so '
                                  f'filter_empty_gt=True leaves nothing to train on')
        return kept


__all__ = ['CocoDetDataset', 'load_coco', 'load_refs']
