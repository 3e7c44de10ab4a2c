"""``ListClsDataset``: multimodal classification from a JSON-lines or CSV list file.

Bring your own data with a config only."""
import csv
import io
import json
import math
import os.path as osp
import re
from typing import Dict, List, Optional, Sequence, Tuple, Union

from mmfusion.errors import AnnotationError, ConfigError
from mmfusion.registry import DATASETS

from .base import BaseMultiModalDataset, describe_value, read_text_file

# list-file column -> pipeline results key; path columns are joined to data_root
PATH_KEYS = ('img_path', 'depth_path', 'audio_path')
VALUE_KEYS = ('text', 'vector')
MODALITY_KEYS = PATH_KEYS + VALUE_KEYS
# list-file column -> the modality name the pipeline and the model use
COLUMN_MODALITIES = dict(img_path='image', depth_path='depth', audio_path='audio', text='text',
                         vector='vector')
# a label written as digits (CSV has no other way) is a class index
_INDEX_PATTERN = re.compile(r'-?[0-9]+')
MAX_CLASSES = 2**31


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@DATASETS.register_module()
class ListClsDataset(BaseMultiModalDataset):
    """Single- or multi-label classification samples listed in a JSON-lines or CSV file.

    One row per sample. Recognised columns (any subset; at least one modality):

    * ``img_path``, ``depth_path``, ``audio_path``: files, relative to
      ``data_root`` (or absolute);
    * ``text``: a string;
    * ``vector``: a non-empty list of finite numbers (in CSV: numbers
      separated by spaces);
    * ``label``: a class index (an int; in CSV its digits) or a class name
      (single-label), or ``labels``: a list of them (multi-label; in CSV
      separated by ``|``). A name is looked up in ``classes`` first.

    Other columns are kept in the sample's info (e.g. ``label_name``).
    Example ``train.jsonl``::

        {"img_path": "images/1.png", "text": "a red circle.", "label": 1}
        {"img_path": "images/2.png", "text": "two blue squares.", "label": "match"}

    and ``train.csv``::

        img_path,audio_path,label
        images/1.png,audio/1.wav,cat

    Args:
        ann_file: the list file (``.jsonl``/``.json`` lines, or ``.csv``),
            relative to ``data_root``. UTF-8, optionally with a byte-order mark.
        classes: class names (index = position), or a text file with one per
            line; needed when labels are given as names.
        multi_label: rows carry ``labels`` lists instead of one ``label``.
        test_mode: rows may lack labels.
        on_bad_sample, check_files: see :class:`BaseMultiModalDataset`.
        allow_missing_modalities: rows may lack a modality column that other
            rows have; it is listed in the sample's ``missing_modalities``
            (``img_path`` -> ``'image'``, ``audio_path`` -> ``'audio'``,
            ``text`` -> ``'text'`` ...). Default: such a row is an error.

    Each sample: the path/value columns above, ``gt_label`` (list of ints)
    and ``sample_idx``.

    Raises :class:`~mmfusion.errors.AnnotationError` naming the file, line,
    sample index and column for a list file that is missing, not UTF-8, not
    valid JSON lines / CSV, holds no samples, or has a row with no modality,
    a value of the wrong type, a missing or unknown label, or a path to a
    file that does not exist (with ``check_files``).
    """

    def __init__(self, ann_file: str, classes: Optional[Union[str, Sequence[str]]] = None,
                 multi_label: bool = False, **kwargs) -> None:
        self.multi_label = multi_label
        metainfo = dict(kwargs.pop('metainfo', None) or {})
        if classes is not None:
            metainfo['classes'] = tuple(self._read_classes(classes))
        super().__init__(ann_file=ann_file, metainfo=metainfo, **kwargs)

    @classmethod
    def _read_classes(cls, classes: Union[str, Sequence[str]]) -> List[str]:
        """Class names from a list, or from a file with one name per line."""
        if isinstance(classes, str):
            text = read_text_file(classes, 'classes file')
            names = [line.strip() for line in text.split('\n') if line.strip()]
            source = f'classes file {classes}'
            error = AnnotationError
        else:
            names = [str(c) for c in classes]
            source = f'{cls.__name__}: classes'
            error = ConfigError
        if not names:
            raise error(f'{source} holds no class names; expected one name per class')
        seen = set()
        for name in names:
            if name in seen:
                raise error(f'{source} names class {name!r} twice; expected unique names')
            seen.add(name)
        return names

    # -- reading the list file ---------------------------------------------

    def _read_rows(self) -> List[Tuple[int, dict]]:
        """(line number, raw row) for every non-blank line of the list file."""
        path = self.ann_file
        text = read_text_file(path, f'{type(self).__name__}: ann_file')
        if path.endswith('.csv'):
            return self._read_csv(path, text)
        rows = []
        for line_no, line in enumerate(text.split('\n'), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except (ValueError, RecursionError) as e:
                reason = e.msg if isinstance(e, json.JSONDecodeError) else str(e) or 'too deep'
                raise AnnotationError(
                    f'{path}, line {line_no} (sample {len(rows)}): not valid JSON ({reason}); '
                    f'expected one JSON object per line (JSON lines), e.g. '
                    f'{{"img_path": "images/1.png", "label": 0}}') from None
            if not isinstance(row, dict):
                raise AnnotationError(
                    f'{path}, line {line_no} (sample {len(rows)}): found '
                    f'{describe_value(row)}; expected a JSON object (one per line)')
            rows.append((line_no, row))
        return rows

    @staticmethod
    def _read_csv(path: str, text: str) -> List[Tuple[int, dict]]:
        """Rows of a CSV file with a header line; empty cells are left out."""
        reader = csv.reader(io.StringIO(text, newline=''))
        header: Optional[List[str]] = None
        rows = []
        line_no = 1
        try:
            for record in reader:
                if record and header is None:
                    header = [name.strip() for name in record]
                    for column, name in enumerate(header, start=1):
                        if not name:
                            raise AnnotationError(f'{path}, line {line_no}: header column '
                                                  f'{column} has no name; expected a column '
                                                  f'name such as img_path, text or label')
                        if header.count(name) > 1:
                            raise AnnotationError(f'{path}, line {line_no}: the header names '
                                                  f'column {name!r} twice; expected unique '
                                                  f'column names')
                elif record:
                    if len(record) > len(header):
                        raise AnnotationError(
                            f'{path}, line {line_no} (sample {len(rows)}): found '
                            f'{len(record)} fields; expected at most {len(header)}, one per '
                            f'header column {header} (quote fields that contain commas)')
                    rows.append((line_no, {name: value for name, value in zip(header, record)
                                           if value != ''}))
                line_no = reader.line_num + 1
        except csv.Error as e:
            raise AnnotationError(f'{path}, line {reader.line_num}: not valid CSV ({e}); '
                                  f'expected a header line and one row per sample') from None
        return rows

    @staticmethod
    def _parse_csv_row(row: Dict[str, str], where: str) -> dict:
        """Turn a CSV row's strings into the JSON-lines value types."""
        row = dict(row)
        if 'vector' in row:
            try:
                row['vector'] = [float(v) for v in row['vector'].split()]
            except ValueError:
                raise AnnotationError(f'{where}: column "vector" is '
                                      f'{describe_value(row["vector"])}; expected numbers '
                                      f'separated by spaces') from None
        if 'labels' in row:
            row['labels'] = row['labels'].split('|')
        return row

    # -- checking the values -------------------------------------------------

    def _label_index(self, value, where: str, field: str) -> int:
        """The class index of one label: an int index, a class name, or (CSV)
        an index written as digits."""
        classes = self._metainfo.get('classes')
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise AnnotationError(f'{where}: {field} is {describe_value(value)}; expected a '
                                  f'class index (int) or a class name (str)')
        if isinstance(value, str):
            if classes and value in self._class_index:
                return self._class_index[value]
            if not _INDEX_PATTERN.fullmatch(value):
                if not classes:
                    raise AnnotationError(f'{where}: {field} {value!r} is a class name but the '
                                          f'dataset has no classes; pass classes=[...]')
                shown = list(classes[:20]) + (['...'] if len(classes) > 20 else [])
                raise AnnotationError(f'{where}: {field} is an unknown class {value!r}; '
                                      f'expected one of {shown}')
            value = int(value)
        # without classes an index is only bounded by what a label tensor holds
        num_classes = len(classes) if classes else MAX_CLASSES
        if not 0 <= value < num_classes:
            raise AnnotationError(
                f'{where}: {field} {value} is out of range; expected a class index in '
                f'0 .. {num_classes - 1}'
                + (f' ({num_classes} classes)' if classes else ' (the dataset has no classes)'))
        return value

    def _check_values(self, row: dict, where: str) -> None:
        """Raise :class:`AnnotationError` for a modality value of the wrong type."""
        for key in PATH_KEYS:
            if key in row and not (isinstance(row[key], str) and row[key]):
                raise AnnotationError(f'{where}: {key} is {describe_value(row[key])}; '
                                      f'expected a file path (a non-empty string)')
        if 'text' in row and not isinstance(row['text'], str):
            raise AnnotationError(f'{where}: text is {describe_value(row["text"])}; expected '
                                  f'a string')
        if 'vector' in row:
            vector = row['vector']
            if not (isinstance(vector, list) and vector
                    and all(_is_number(v) and math.isfinite(v) for v in vector)):
                raise AnnotationError(f'{where}: vector is {describe_value(vector)}; expected '
                                      f'a non-empty list of finite numbers')

    def _parse_row(self, row: dict, where: str) -> dict:
        """A list-file row -> the sample's info (paths joined, ``gt_label``)."""
        if not any(k in row for k in MODALITY_KEYS):
            raise AnnotationError(f'{where}: no modality; expected at least one of '
                                  f'{list(MODALITY_KEYS)}, found keys {sorted(row)}')
        self._check_values(row, where)
        info = dict(row)
        for key in PATH_KEYS:
            if key in row and self.data_root and not osp.isabs(row[key]):
                info[key] = osp.join(self.data_root, row[key])
        label_key, other_key = ('labels', 'label') if self.multi_label else ('label', 'labels')
        if label_key in row:
            value = info.pop(label_key)
            if self.multi_label:
                if not isinstance(value, list):
                    raise AnnotationError(f'{where}: labels is {describe_value(value)}; '
                                          f'expected a list of class indices or names')
                info['gt_label'] = sorted({self._label_index(v, where, 'a label in labels')
                                           for v in value})
            else:
                info['gt_label'] = [self._label_index(value, where, 'label')]
        elif not self.test_mode:
            hint = (f'; the row has "{other_key}": set multi_label={not self.multi_label}'
                    if other_key in row else '')
            raise AnnotationError(f'{where}: missing "{label_key}"; expected a '
                                  f'{"list of labels" if self.multi_label else "label"} '
                                  f'(multi_label={self.multi_label}){hint}')
        return info

    def load_data_list(self) -> List[dict]:
        """Read, check and convert every row of the list file."""
        path = self.ann_file
        classes = self._metainfo.get('classes') or ()
        self._class_index = {name: i for i, name in enumerate(classes)}
        rows = self._read_rows()
        if not rows:
            raise AnnotationError(f'{path}: the list file holds no samples; expected one row '
                                  f'per sample')
        is_csv = path.endswith('.csv')
        line_numbers = [line_no for line_no, _ in rows]

        def where(i: int) -> str:
            return f'{path}, line {line_numbers[i]} (sample {i})'

        data_list = []
        for i, (_, row) in enumerate(rows):
            if is_csv:
                row = self._parse_csv_row(row, where(i))
            data_list.append(self._parse_row(row, where(i)))
        self._mark_missing_modalities(data_list, where)
        self.check_files_exist(((i, key, info[key]) for i, info in enumerate(data_list)
                                for key in PATH_KEYS if key in info), where)
        return data_list

    def _mark_missing_modalities(self, data_list: List[dict], where) -> None:
        """Every row must carry the modality columns some row has, unless
        ``allow_missing_modalities``: then a row's absent ones are listed in
        its ``missing_modalities``."""
        first = {}
        for i, info in enumerate(data_list):
            for key in MODALITY_KEYS:
                if key in info:
                    first.setdefault(key, i)
        for i, info in enumerate(data_list):
            absent = [key for key in MODALITY_KEYS if key in first and key not in info]
            if not absent:
                continue
            if not self.allow_missing_modalities:
                key = absent[0]
                raise AnnotationError(
                    f'{where(i)}: missing "{key}", which other rows have (first '
                    f'{where(first[key])}); give every row the same modality columns, or set '
                    f'allow_missing_modalities=True in the dataset config if samples may lack '
                    f'a modality')
            info['missing_modalities'] = [COLUMN_MODALITIES[key] for key in absent]


__all__ = ['COLUMN_MODALITIES', 'ListClsDataset', 'MODALITY_KEYS', 'PATH_KEYS', 'VALUE_KEYS']
