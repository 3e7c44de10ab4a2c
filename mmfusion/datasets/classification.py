"""Multimodal classification from a list file: bring your own data with a config only."""
import csv
import json
import os.path as osp
from typing import Dict, List, Optional, Sequence, Union

from mmengine.dataset import BaseDataset

from mmfusion.registry import DATASETS

from .mmshapes import COLORS, SHAPES, ensure_mmshapes

# list-file column -> pipeline results key; path columns are joined to data_root
PATH_KEYS = ('img_path', 'depth_path', 'audio_path')
VALUE_KEYS = ('text', 'vector')


@DATASETS.register_module()
class MultiModalClsDataset(BaseDataset):
    """Single- or multi-label classification samples listed in a JSON-lines or CSV file.

    One row per sample. Recognised columns (any subset; at least one modality):

    * ``img_path``, ``depth_path``, ``audio_path``: files, relative to
      ``data_root`` (or absolute);
    * ``text``: a string;
    * ``vector``: a list of numbers (in CSV: numbers separated by spaces);
    * ``label``: a class index or a class name (single-label), or
      ``labels``: a list of them (multi-label; in CSV separated by ``|``).

    Other columns are kept in the sample's info (e.g. ``label_name``).
    Example ``train.jsonl``::

        {"img_path": "images/1.png", "text": "a red circle.", "label": 1}
        {"img_path": "images/2.png", "text": "two blue squares.", "label": "match"}

    and ``train.csv``::

        img_path,audio_path,label
        images/1.png,audio/1.wav,cat

    Args:
        ann_file: the list file (``.jsonl``/``.json`` lines, or ``.csv``),
            relative to ``data_root``.
        classes: class names (index = position), or a text file with one per
            line; needed when labels are given as names.
        multi_label: rows carry ``labels`` lists instead of one ``label``.
        test_mode: rows may lack labels.

    Each sample: the path/value columns above, ``gt_label`` (list of ints)
    and ``sample_idx``.
    """

    def __init__(self, ann_file: str, classes: Optional[Union[str, Sequence[str]]] = None,
                 multi_label: bool = False, **kwargs) -> None:
        self.multi_label = multi_label
        metainfo = dict(kwargs.pop('metainfo', None) or {})
        if classes is not None:
            metainfo['classes'] = tuple(self._read_classes(classes))
        super().__init__(ann_file=ann_file, metainfo=metainfo, **kwargs)

    @staticmethod
    def _read_classes(classes: Union[str, Sequence[str]]) -> List[str]:
        if isinstance(classes, str):
            if not osp.isfile(classes):
                raise FileNotFoundError(f'classes file not found: {classes}')
            with open(classes, encoding='utf-8') as f:
                return [line.strip() for line in f if line.strip()]
        return [str(c) for c in classes]

    def _read_rows(self) -> List[dict]:
        path = self.ann_file
        if not osp.isfile(path):
            raise FileNotFoundError(f'{type(self).__name__}: ann_file not found: {path}')
        rows = []
        if path.endswith('.csv'):
            with open(path, newline='', encoding='utf-8') as f:
                for row in csv.DictReader(f):
                    rows.append(self._parse_csv_row(row))
            return rows
        with open(path, encoding='utf-8') as f:
            for line_no, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    raise ValueError(f'{path}, line {line_no}: not valid JSON ({e.msg}); '
                                     'expected one JSON object per line') from e
                if not isinstance(row, dict):
                    raise ValueError(f'{path}, line {line_no}: expected a JSON object, got '
                                     f'{type(row).__name__}')
                rows.append(row)
        return rows

    @staticmethod
    def _parse_csv_row(row: Dict[str, str]) -> dict:
        row = {k: v for k, v in row.items() if v not in (None, '')}
        if 'vector' in row:
            row['vector'] = [float(v) for v in row['vector'].split()]
        if 'labels' in row:
            row['labels'] = row['labels'].split('|')
        return row

    def _label_index(self, value, row_no: int) -> int:
        classes = self._metainfo.get('classes')
        if isinstance(value, str) and not value.lstrip('-').isdigit():
            if not classes:
                raise ValueError(f'{self.ann_file}, row {row_no}: label {value!r} is a name but '
                                 'the dataset has no classes; pass classes=[...]')
            if value not in classes:
                raise ValueError(f'{self.ann_file}, row {row_no}: unknown class {value!r}; '
                                 f'classes are {list(classes)}')
            return list(classes).index(value)
        index = int(value)
        if index < 0 or (classes and index >= len(classes)):
            raise ValueError(f'{self.ann_file}, row {row_no}: label {index} is out of range '
                             f'for {len(classes) if classes else "the"} classes')
        return index

    def load_data_list(self) -> List[dict]:
        rows = self._read_rows()
        if not rows:
            raise ValueError(f'{self.ann_file}: the list file has no samples')
        data_list = []
        label_key = 'labels' if self.multi_label else 'label'
        for row_no, row in enumerate(rows, start=1):
            info = dict(row)
            if not any(k in row for k in PATH_KEYS + VALUE_KEYS):
                raise KeyError(f'{self.ann_file}, row {row_no}: no modality; expected one of '
                               f'{list(PATH_KEYS + VALUE_KEYS)}, got {sorted(row)}')
            for key in PATH_KEYS:
                if key in row:
                    info[key] = osp.join(self.data_root, row[key]) if self.data_root \
                        and not osp.isabs(row[key]) else row[key]
            if label_key in row:
                value = info.pop(label_key)
                if self.multi_label:
                    if not isinstance(value, (list, tuple)):
                        raise TypeError(f'{self.ann_file}, row {row_no}: "labels" must be a '
                                        f'list, got {value!r}')
                    info['gt_label'] = sorted({self._label_index(v, row_no) for v in value})
                else:
                    info['gt_label'] = [self._label_index(value, row_no)]
            elif not self.test_mode:
                raise KeyError(f'{self.ann_file}, row {row_no}: missing "{label_key}" '
                               f'(multi_label={self.multi_label})')
            data_list.append(info)
        return data_list


MMSHAPES_CLS_TASKS = dict(
    # image + caption -> does the caption describe the image? (negatives: other
    # scenes' captions; itm_hard: captions of minimally changed scenes)
    itm=dict(classes=('mismatch', 'match'), multi_label=False),
    itm_hard=dict(classes=('mismatch', 'match'), multi_label=False),
    # image + sound -> the shape of the sounding object (the pitch gives its colour)
    av=dict(classes=SHAPES, multi_label=False),
    # image -> the colours present
    multilabel=dict(classes=tuple(COLORS), multi_label=True),
)


@DATASETS.register_module()
class MMShapesClsDataset(MultiModalClsDataset):
    """A classification task of the embedded MMShapes dataset, generated on first use.

    Args:
        task: ``'itm'`` (image-text matching, 2 classes; ``'itm_hard'``
            with minimally changed captions as negatives), ``'av'``
            (audio-visual: which shape is sounding, 3 classes) or
            ``'multilabel'`` (which colours are present, 6 classes).
        split: ``'train'`` or ``'val'``.
        data_root: where MMShapes lives (generated there if absent).
        mmshapes: generator parameters to insist on (see ``ensure_mmshapes``).
    """

    def __init__(self, task: str, split: str = 'train', data_root: str = 'data/mmshapes',
                 mmshapes: Optional[dict] = None, **kwargs) -> None:
        if task not in MMSHAPES_CLS_TASKS:
            raise ValueError(f'MMShapesClsDataset: task must be one of '
                             f'{sorted(MMSHAPES_CLS_TASKS)}, got {task!r}')
        if split not in ('train', 'val'):
            raise ValueError(f'MMShapesClsDataset: split must be "train" or "val", got {split!r}')
        ensure_mmshapes(data_root, **(mmshapes or {}))
        spec = MMSHAPES_CLS_TASKS[task]
        super().__init__(ann_file=f'classification/{split}_{task}.jsonl', data_root=data_root,
                         classes=spec['classes'], multi_label=spec['multi_label'], **kwargs)
