"""Image-caption (or audio-caption) pairs for contrastive pretraining and retrieval.

Two on-disk formats and the embedded data:

* ``CocoCaptionDataset``: a COCO captions file (``images`` with ``id`` and
  ``file_name``, ``annotations`` with ``image_id`` and ``caption``), as
  COCO's ``captions_train2017.json`` and MMShapes' ``captions_{split}.json``;
* ``ListCaptionDataset``: JSON lines, one row per caption
  (``{"img_path": ..., "text": ...}``) or per item with a ``captions`` list;
* ``MMShapesCaptionDataset``: MMShapes' COCO captions, generated on first use.

Several captions per item are the rule (COCO has five). Training
(``test_mode=False``) yields one sample per caption, each with its item, so an
epoch sees every caption once. Evaluation (``test_mode=True``) yields one
sample per item with all of its captions in ``captions`` (and the first in
``text``), so retrieval embeds every item and every caption exactly once.
"""
import json
import os.path as osp
from collections import OrderedDict
from typing import Dict, List, Optional, Tuple

from mmfusion.errors import AnnotationError, ConfigError
from mmfusion.registry import DATASETS

from .base import (
    BaseMultiModalDataset,
    check_record,
    describe_value,
    is_int,
    load_json,
    read_text_file,
    top_level_list,
)
from .mmshapes import ensure_mmshapes

PATH_FIELDS = ('img_path', 'audio_path', 'depth_path')


def _is_text(value) -> bool:
    return isinstance(value, str) and bool(value.strip())


class _CaptionDatasetMixin:
    """Turns ``(item path, [captions], extra info)`` groups into samples."""

    def _check_path_field(self, path_field: str) -> None:
        if path_field not in PATH_FIELDS:
            raise ConfigError(f'{type(self).__name__}: path_field must be one of '
                              f'{list(PATH_FIELDS)}, got {path_field!r}')

    def _join(self, path: str) -> str:
        return osp.join(self.data_root, path) if self.data_root and not osp.isabs(path) else path

    def _checked_samples(self, groups: dict, path: str) -> list:
        """The data list of ``groups`` (file -> (path, captions, extra)), after
        checking that every image file exists (errors name ``path``)."""
        data_list = self._samples(list(groups.values()))
        self.check_files_exist(((i, self.path_field, info[self.path_field])
                                for i, info in enumerate(data_list)),
                               lambda i: f'{path} (sample {i})')
        return data_list

    def _samples(self, groups: List[Tuple[str, List[str], dict]]) -> List[dict]:
        data_list = []
        for item_idx, (path, captions, extra) in enumerate(groups):
            base = dict(extra, **{self.path_field: path}, item_idx=item_idx)
            if self.test_mode:
                data_list.append(dict(base, text=captions[0] if captions else '',
                                      captions=list(captions)))
            else:
                data_list.extend(dict(base, text=c) for c in captions)
        return data_list


@DATASETS.register_module()
class CocoCaptionDataset(_CaptionDatasetMixin, BaseMultiModalDataset):
    """Captions in COCO format.

    Args:
        ann_file: the COCO captions JSON, relative to ``data_root``.
        file_key: the ``images`` entry field naming the item's file
            (``file_name``; MMShapes also has ``audio_file``, ``depth_file``).
        path_field: the sample key of that file: ``img_path`` (loaded by
            ``LoadImageFromFile``), ``audio_path`` or ``depth_path``.
        test_mode: one sample per item with every caption (evaluation)
            instead of one per caption (training).
        on_bad_sample, check_files: see :class:`BaseMultiModalDataset`.

    Each sample: ``<path_field>``, ``text`` (a caption), ``img_id``,
    ``item_idx`` (the item's position), and in test mode ``captions``
    (list[str]). Items without any caption are left out of training and
    kept (with an empty list) in test mode.

    Raises :class:`~mmfusion.errors.AnnotationError` naming the file and
    entry for a missing or malformed file, an annotation whose ``image_id``
    names no image, or a caption that is not a non-empty string.
    """

    def __init__(self, ann_file: str, file_key: str = 'file_name', path_field: str = 'img_path',
                 **kwargs) -> None:
        self.file_key = file_key
        self.path_field = path_field
        self._check_path_field(path_field)
        super().__init__(ann_file=ann_file, **kwargs)

    def load_data_list(self) -> List[dict]:
        path = self.ann_file
        data = load_json(path, f'{type(self).__name__}: ann_file')
        images = top_level_list(data, 'images', path, 'COCO captions file')
        anns = top_level_list(data, 'annotations', path, 'COCO captions file')
        groups: Dict[int, Tuple[str, List[str], dict]] = OrderedDict()
        for i, img in enumerate(images):
            where = f'{path}: images[{i}]'
            check_record(img, where, {'id': (is_int, 'an int'),
                                      self.file_key: (_is_text, 'a file path')})
            if img['id'] in groups:
                raise AnnotationError(f'{where}: id {img["id"]} appears twice; expected '
                                      'unique image ids')
            groups[img['id']] = (self._join(img[self.file_key]), [], dict(img_id=img['id']))
        for i, ann in enumerate(anns):
            where = f'{path}: annotations[{i}]'
            check_record(ann, where, {'image_id': (is_int, 'an int'),
                                      'caption': (_is_text, 'a non-empty string')})
            if ann['image_id'] not in groups:
                raise AnnotationError(f'{where}: image_id {ann["image_id"]} names no entry of '
                                      '"images"; expected the id of a listed image')
            groups[ann['image_id']][1].append(ann['caption'].strip())
        if not any(caps for _, caps, _ in groups.values()):
            raise AnnotationError(f'{path}: no captions; expected "annotations" with '
                                  '"image_id" and "caption"')
        return self._checked_samples(groups, path)


@DATASETS.register_module()
class ListCaptionDataset(_CaptionDatasetMixin, BaseMultiModalDataset):
    """Captions listed in a JSON-lines file: bring your own image-text data.

    One JSON object per line, either one caption per row (rows naming the
    same file are one item with several captions)::

        {"img_path": "images/1.jpg", "text": "a dog on a sofa."}
        {"img_path": "images/1.jpg", "text": "a brown dog lying down."}

    or one item per row: ``{"img_path": "images/2.jpg", "captions": ["...", "..."]}``.
    Other columns are kept in the sample's info.

    Args:
        ann_file: the ``.jsonl`` file, relative to ``data_root``.
        path_field: the column naming the item's file (``img_path``,
            ``audio_path`` or ``depth_path``).
        match_key: for an image-text matching list that also holds false
            pairs (``{"img_path": ..., "text": ..., "label": 0}``): keep only
            the rows whose ``match_key`` column is 1 / true.
        test_mode, on_bad_sample, check_files: see :class:`CocoCaptionDataset`.

    Raises :class:`~mmfusion.errors.AnnotationError` naming the file and line
    for invalid JSON, a row without the path column, or a row without a
    non-empty ``text`` / ``captions``.
    """

    def __init__(self, ann_file: str, path_field: str = 'img_path',
                 match_key: Optional[str] = None, **kwargs) -> None:
        self.path_field = path_field
        self.match_key = match_key
        self._check_path_field(path_field)
        super().__init__(ann_file=ann_file, **kwargs)

    def load_data_list(self) -> List[dict]:
        path = self.ann_file
        text = read_text_file(path, f'{type(self).__name__}: ann_file')
        groups: Dict[str, Tuple[str, List[str], dict]] = OrderedDict()
        for line_no, line in enumerate(text.split('\n'), start=1):
            if not line.strip():
                continue
            where = f'{path}, line {line_no}'
            try:
                row = json.loads(line)
            except (ValueError, RecursionError):
                raise AnnotationError(f'{where}: not valid JSON; expected one JSON object per '
                                      f'line, e.g. {{"{self.path_field}": "images/1.jpg", '
                                      f'"text": "a caption."}}') from None
            if not isinstance(row, dict):
                raise AnnotationError(f'{where}: found {describe_value(row)}; expected a JSON '
                                      'object')
            if self.match_key is not None:
                if self.match_key not in row:
                    raise AnnotationError(f'{where}: no "{self.match_key}" column (match_key); '
                                          f'found keys {sorted(row)}')
                if row.pop(self.match_key) not in (1, True):
                    continue  # a false pair
            if not _is_text(row.get(self.path_field)):
                raise AnnotationError(f'{where}: {self.path_field} is missing or not a path '
                                      f'(found keys {sorted(row)}); expected the item\'s file')
            captions = row.pop('captions', None)
            if captions is None:
                captions = [row.pop('text', None)]
            else:
                row.pop('text', None)
            if (not isinstance(captions, list) or not captions
                    or not all(_is_text(c) for c in captions)):
                raise AnnotationError(f'{where}: needs "text" (a non-empty string) or '
                                      f'"captions" (a list of them), got '
                                      f'{describe_value(captions)}')
            file = row.pop(self.path_field)
            entry = groups.setdefault(file, (self._join(file), [], row))
            entry[1].extend(c.strip() for c in captions)
        if not groups:
            raise AnnotationError(f'{path}: the list file holds no captions; expected one '
                                  'JSON object per line')
        return self._checked_samples(groups, path)


@DATASETS.register_module()
class MMShapesCaptionDataset(CocoCaptionDataset):
    """MMShapes' COCO captions (one per scene), generated on first use.

    Args:
        split: ``'train'`` or ``'val'``.
        data_root: where MMShapes lives.
        mmshapes: generator parameters to insist on (see ``ensure_mmshapes``).
        **kwargs: :class:`CocoCaptionDataset`'s (``file_key='audio_file'``
            with ``path_field='audio_path'`` pairs the sounds with the captions).
    """

    def __init__(self, split: str = 'train', data_root: str = 'data/mmshapes',
                 mmshapes: Optional[dict] = None, **kwargs) -> None:
        if split not in ('train', 'val'):
            raise ConfigError(f'MMShapesCaptionDataset: split must be "train" or "val", '
                              f'got {split!r}')
        ensure_mmshapes(data_root, **(mmshapes or {}))
        super().__init__(ann_file=f'annotations/captions_{split}.json', data_root=data_root,
                         **kwargs)


__all__ = ['CocoCaptionDataset', 'ListCaptionDataset', 'MMShapesCaptionDataset']
