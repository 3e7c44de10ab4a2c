"""Semantic and referring segmentation datasets: mask PNGs, or COCO instances on the fly."""
import json
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple, Union

from mmfusion.errors import AnnotationError, ConfigError
from mmfusion.registry import DATASETS

from .base import (
    BaseMultiModalDataset,
    check_record,
    describe_value,
    load_json,
    read_text_file,
    top_level_list,
)
from .detection import IMAGE_FIELDS, CocoDetDataset, _is_path, _join, is_int

BACKGROUND = 'background'
IGNORE_INDEX = 255


def _check_ignore_index(owner: str, ignore_index: int) -> int:
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, int) or ignore_index < 0:
        raise ConfigError(f'{owner}: ignore_index must be an int >= 0 (255 for uint8 maps), '
                          f'got {ignore_index!r}')
    return ignore_index


def _read_jsonl(path: str, what: str) -> List[Tuple[int, dict]]:
    """(line number, object) for every non-blank line of a JSON-lines file."""
    rows = []
    for line_no, line in enumerate(read_text_file(path, what).split('\n'), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except (ValueError, RecursionError) as e:
            reason = e.msg if isinstance(e, json.JSONDecodeError) else str(e) or 'too deep'
            raise AnnotationError(f'{path}, line {line_no} (sample {len(rows)}): not valid JSON '
                                  f'({reason}); expected one JSON object per line') from None
        if not isinstance(row, dict):
            raise AnnotationError(f'{path}, line {line_no} (sample {len(rows)}): found '
                                  f'{describe_value(row)}; expected a JSON object')
        rows.append((line_no, row))
    return rows


@DATASETS.register_module()
class ListSegDataset(BaseMultiModalDataset):
    """Semantic segmentation samples: an image, optional aligned modalities and
    a mask PNG of class indices.

    The samples come from either

    * a JSON-lines file (``ann_file`` ending in ``.jsonl``), one object per
      sample: ``img_path``, ``seg_map_path`` and any other ``<name>_path``
      (e.g. ``depth_path``), all relative to ``data_root``, plus an optional
      ``text``::

          {"img_path": "img/1.png", "depth_path": "depth/1.png", "seg_map_path": "ann/1.png"}

    * or a COCO-style JSON whose ``images`` list gives ``file_name``
      (relative to ``data_prefix['img_path']``) and the mask either in the
      record (``seg_map_key``, relative to ``data_root``) or in the folder
      ``data_prefix['seg_map_path']`` under the image's file stem plus
      ``seg_map_suffix``; ``extra_modalities`` as in
      :class:`~mmfusion.datasets.CocoDetDataset`.

    Args:
        ann_file: the list file, relative to ``data_root``.
        classes: class names (index = value in the masks) or a text file with
            one per line (relative to ``data_root``); for a COCO-style JSON
            without it, ``'background'`` and the category names, whose ids
            must then be 1..K (the values in the masks).
        ignore_index: the mask value that marks pixels to ignore.
        seg_map_key, seg_map_suffix, extra_modalities, data_prefix: see above.
        on_bad_sample, check_files: see :class:`BaseMultiModalDataset`.

    Metainfo: ``classes`` and ``ignore_index``. Each sample: ``img_path``,
    ``seg_map_path`` (may be absent in ``test_mode``), ``<name>_path``,
    ``img_id`` (COCO-style), ``text`` (when given). Bad files raise
    :class:`~mmfusion.errors.AnnotationError` naming the file, line or record
    and the field.
    """
    METAINFO = dict(task='segmentation')

    def __init__(self, ann_file: str, classes: Optional[Union[str, Sequence[str]]] = None,
                 ignore_index: int = IGNORE_INDEX, seg_map_key: Optional[str] = None,
                 seg_map_suffix: str = '.png', extra_modalities: Optional[Dict[str, str]] = None,
                 data_prefix: Optional[dict] = None, **kwargs) -> None:
        name = type(self).__name__
        metainfo = dict(kwargs.pop('metainfo', None) or {})
        metainfo['ignore_index'] = _check_ignore_index(name, ignore_index)
        self._given_classes = classes if classes is not None else metainfo.get('classes')
        self.seg_map_key = seg_map_key
        self.seg_map_suffix = seg_map_suffix
        self.extra_modalities = dict(extra_modalities or {})
        super().__init__(ann_file=ann_file, metainfo=metainfo,
                         data_prefix=data_prefix or dict(img_path=''), **kwargs)

    def _read_classes(self) -> Optional[Tuple[str, ...]]:
        classes = self._given_classes
        if classes is None:
            return None
        if isinstance(classes, str):
            path = _join(self.data_root, classes)
            names = [line.strip() for line in read_text_file(path, 'classes file').split('\n')
                     if line.strip()]
            source, error = f'classes file {path}', AnnotationError
        else:
            names = [str(c) for c in classes]
            source, error = f'{type(self).__name__}: classes', ConfigError
        if not names or len(set(names)) != len(names):
            raise error(f'{source} must hold unique class names (one per class), got {names}')
        return tuple(names)

    def _rows_from_jsonl(self) -> List[dict]:
        path = self.ann_file
        data_list = []
        for i, (line_no, row) in enumerate(_read_jsonl(path, f'{type(self).__name__}: '
                                                             f'ann_file')):
            where = f'{path}, line {line_no} (sample {i})'
            required = ['img_path'] + ([] if self.test_mode else ['seg_map_path'])
            missing = [k for k in required if k not in row]
            if missing:
                raise AnnotationError(f'{where}: missing {missing}; expected keys img_path and '
                                      f'seg_map_path (relative to data_root), found '
                                      f'{sorted(row)[:10]}')
            info = dict(row)
            for key, value in row.items():
                if key.endswith('_path'):
                    if not _is_path(value):
                        raise AnnotationError(f'{where}: {key} is {describe_value(value)}; '
                                              f'expected a file path (a non-empty string)')
                    info[key] = _join(self.data_root, value)
            if 'text' in row and not isinstance(row['text'], str):
                raise AnnotationError(f'{where}: text is {describe_value(row["text"])}; '
                                      f'expected a string')
            data_list.append(info)
        return data_list

    def _classes_from_categories(self, data: dict) -> Tuple[str, ...]:
        path = self.ann_file
        categories = data.get('categories') if isinstance(data, dict) else None
        if not categories:
            raise ConfigError(f'{type(self).__name__}: {path} has no "categories"; pass '
                              f"classes=['background', ...] (index = value in the masks)")
        for k, category in enumerate(categories):
            check_record(category, f'{path}, categories[{k}]',
                          dict(id=(is_int, 'an int'),
                               name=(_is_path, 'a non-empty string')))
        ids = sorted(c['id'] for c in categories)
        if ids != list(range(1, len(ids) + 1)):
            raise AnnotationError(f'{path}: category ids {ids[:20]} are not 1..{len(ids)}, so '
                                  f'they cannot be the mask values; pass classes=[...] '
                                  f'(index = value in the masks)')
        names = {c['id']: c['name'] for c in categories}
        return (BACKGROUND, ) + tuple(names[i] for i in ids)

    def _rows_from_coco(self, data: dict) -> List[dict]:
        path = self.ann_file
        images = top_level_list(data, 'images', path, 'COCO-style image list')
        mask_dir = self.data_prefix.get('seg_map_path')
        if self.seg_map_key is None and mask_dir is None and not self.test_mode:
            raise ConfigError(f'{type(self).__name__}: where are the masks of {path}? pass '
                              f"seg_map_key='<image-record key>' or data_prefix=dict("
                              f"img_path=..., seg_map_path='<folder>')")
        fields = dict(IMAGE_FIELDS, **{k: (_is_path, 'a file path (a non-empty string)')
                                       for k in self.extra_modalities.values()})
        if self.seg_map_key is not None:
            fields[self.seg_map_key] = (_is_path, 'a file path (a non-empty string)')
        data_list = []
        for i, image in enumerate(images):
            check_record(image, f'{path}, images[{i}]', fields)
            info = dict(img_path=_join(self.data_prefix.get('img_path'), image['file_name']),
                        img_id=image['id'])
            if self.seg_map_key is not None:
                info['seg_map_path'] = _join(self.data_root, image[self.seg_map_key])
            elif mask_dir is not None:
                stem = osp.splitext(osp.basename(image['file_name']))[0]
                info['seg_map_path'] = osp.join(mask_dir, stem + self.seg_map_suffix)
            for modality, key in self.extra_modalities.items():
                info[f'{modality}_path'] = _join(self.data_root, image[key])
            data_list.append(info)
        return data_list

    def load_data_list(self) -> List[dict]:
        """Read and check the list file."""
        classes = self._read_classes()
        if self.ann_file.endswith('.jsonl'):
            data_list = self._rows_from_jsonl()
            if classes is None:
                raise ConfigError(f'{type(self).__name__}: a JSON-lines list ({self.ann_file}) '
                                  f'needs classes=[...] (index = value in the masks)')
        else:
            data = load_json(self.ann_file, 'COCO-style image list')
            classes = classes or self._classes_from_categories(data)
            data_list = self._rows_from_coco(data)
        if not data_list:
            raise AnnotationError(f'{self.ann_file}: the list holds no samples; expected one '
                                  f'per image')
        self._metainfo['classes'] = classes
        self.check_files_exist(((i, key, value) for i, info in enumerate(data_list)
                                for key, value in info.items() if key.endswith('_path')),
                               lambda i: f'{self.ann_file}, sample {i}')
        return data_list


@DATASETS.register_module()
class CocoSegDataset(CocoDetDataset):
    """Semantic (or, with ``refs_file``, referring) segmentation maps made on
    the fly from a COCO instances file.

    Classes: ``'background'`` (0) and the detection classes of
    :class:`~mmfusion.datasets.CocoDetDataset` (``'object'`` with
    refs). A pixel takes the class of the object on top (crowd regions:
    ``ignore_index``); with refs, 1 where the referred objects are, 0
    elsewhere. Each sample is the detection sample plus either

    * ``seg_map_path`` and ``label_map``, when ``inst_map_key`` names an image
      record key holding an instance-id PNG (relative to ``data_root``; value
      k = the image's k-th annotation in file order, 0 = none):
      ``LoadAnnotations(with_seg=True)`` maps the ids to classes, no file
      is written;
    * or a ``seg_label`` per instance, painted from the decoded polygons/RLE.

    Args:
        inst_map_key: see above; None decodes the annotations' masks.
        ignore_index: the label of crowd pixels; in metainfo.
        **kwargs: :class:`CocoDetDataset` arguments; ``metainfo``
            classes, if given, must start with ``'background'``.
    """
    METAINFO = dict(task='segmentation')

    def __init__(self, ann_file: str, inst_map_key: Optional[str] = None,
                 ignore_index: int = IGNORE_INDEX, **kwargs) -> None:
        name = type(self).__name__
        if inst_map_key is not None and not _is_path(inst_map_key):
            raise ConfigError(f'{name}: inst_map_key must be an image-record key, '
                              f'got {inst_map_key!r}')
        if inst_map_key is None:
            if kwargs.get('with_mask') is False:
                raise ConfigError(f'{name}: without inst_map_key the maps are painted from the '
                                  f'annotations\' masks, so with_mask cannot be False')
            kwargs['with_mask'] = True
        self.inst_map_key = inst_map_key
        self.ignore_index = _check_ignore_index(name, ignore_index)
        kwargs['metainfo'] = dict(kwargs.get('metainfo') or {}, ignore_index=ignore_index)
        super().__init__(ann_file=ann_file, **kwargs)

    def _dataset_classes(self, category_names: List[str]) -> Tuple[str, ...]:
        return (BACKGROUND, ) + self.default_classes(category_names)

    def _resolve_classes(self, category_names: List[str]) -> Tuple[str, ...]:
        classes = super()._resolve_classes(category_names)
        if classes[0] != BACKGROUND:
            raise ConfigError(f"{type(self).__name__}: metainfo classes must start with "
                              f"'{BACKGROUND}' (class 0, where no object is), got "
                              f'{list(classes)}')
        return classes

    def required_image_keys(self) -> Tuple[str, ...]:
        extra = (self.inst_map_key, ) if self.inst_map_key else ()
        return super().required_image_keys() + extra

    def _pixel_label(self, ann: dict, referred: Optional[set]) -> int:
        """The value an annotation's pixels get in the map."""
        if referred is not None and ann['id'] not in referred:
            return 0
        if ann.get('iscrowd'):
            return self.ignore_index
        label = self._instance_label(ann)
        return 0 if label is None else label

    def _make_sample(self, image: dict, anns: List[dict], referred: Optional[set]) -> dict:
        info = super()._make_sample(image, anns, referred)
        if self.inst_map_key:
            info['seg_map_path'] = _join(self.data_root, image[self.inst_map_key])
            info['label_map'] = {0: 0, **{k: self._pixel_label(ann, referred)
                                          for k, ann in enumerate(anns, start=1)}}
        else:
            for instance in info['instances']:
                instance['seg_label'] = (self.ignore_index if instance['ignore_flag']
                                         else instance['bbox_label'])
        return info


@DATASETS.register_module()
class CocoRefSegDataset(CocoSegDataset):
    """Referring segmentation: one sample per expression of ``refs_file``
    (``text``), its map 1 where the referred objects are and 0 elsewhere.

    Args:
        ann_file: COCO instances JSON with the objects' masks.
        refs_file: JSON list of ``{ref_id, image_id, ann_ids, sentence}``.
        **kwargs: :class:`CocoSegDataset` arguments (``inst_map_key`` to use
            instance-id PNGs instead of the annotations' masks).

    Classes ``('background', 'object')``.
    """

    def __init__(self, ann_file: str, refs_file: str, **kwargs) -> None:
        if not _is_path(refs_file):
            raise ConfigError(f'{type(self).__name__}: refs_file must be a file path, '
                              f'got {refs_file!r}')
        super().__init__(ann_file=ann_file, refs_file=refs_file, **kwargs)


__all__ = ['BACKGROUND', 'CocoRefSegDataset', 'CocoSegDataset', 'IGNORE_INDEX',
           'ListSegDataset']
