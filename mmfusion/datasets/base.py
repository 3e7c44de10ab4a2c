"""The base of mmfusion's datasets: annotation checks and the corrupt-sample policy."""
import json
import logging
import os.path as osp
import random
from typing import Any, Callable, Dict, Iterable, Optional, Tuple

from mmengine.dataset import BaseDataset
from mmengine.logging import print_log
from mmengine.structures import BaseDataElement

from mmfusion.errors import AnnotationError, AnnotationFileNotFoundError, ConfigError, DataError

BAD_SAMPLE_POLICIES = ('raise', 'skip')
# metainfo key of a packed data sample: how many bad samples were skipped
# before this one was fetched (read by ``BadSampleReportHook``)
BAD_SAMPLES_SKIPPED_KEY = 'bad_samples_skipped'


def describe_value(value: Any, limit: int = 60) -> str:
    """``repr`` of an annotation value, shortened, with its JSON-ish type name."""
    text = repr(value)
    if len(text) > limit:
        text = text[:limit - 3] + '...'
    return f'{text} ({type(value).__name__})'


def is_uri(path: str) -> bool:
    """Whether ``path`` names a remote file (``s3://``, ``http://`` ...), which
    is not checked at load time."""
    return '://' in path


def read_text_file(path: str, what: str) -> str:
    """The text of a UTF-8 file (a byte-order mark is dropped).

    Raises :class:`AnnotationError` naming ``what`` and the file if it is
    missing, unreadable or not UTF-8 (with the line of the first bad byte).
    """
    if not osp.isfile(path):
        raise AnnotationFileNotFoundError(f'{what} not found: {path}; expected an existing file')
    try:
        with open(path, 'rb') as f:
            data = f.read()
    except OSError as e:  # no permission, a read error
        raise AnnotationError(f'{what} {path} cannot be read: {e}') from e
    try:
        return data.decode('utf-8-sig')
    except UnicodeDecodeError as e:
        line_no = data[:e.start].count(b'\n') + 1
        raise AnnotationError(f'{path}, line {line_no}: {what} is not UTF-8 text (byte '
                              f'{data[e.start:e.start + 1]!r} at offset {e.start}); save it '
                              f'as UTF-8') from None


def with_context(error: DataError, prefix: str, suffix: str = '') -> DataError:
    """A copy of ``error`` (same type) whose message is ``prefix + message + suffix``."""
    message = f'{prefix}{error}{suffix}'
    try:
        return type(error)(message)
    except TypeError:  # a subclass with another signature keeps the base type
        return DataError(message)


def load_json(path: str, what: str) -> Any:
    """Read a JSON file, naming it and its role (``what``) in any error.

    Raises :class:`~mmfusion.errors.AnnotationError` for a missing file, one
    that is not UTF-8, or one that is not valid JSON.
    """
    text = read_text_file(path, what)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise AnnotationError(f'{what} {path} is not valid JSON (line {e.lineno}, column '
                              f'{e.colno}: {e.msg})') from None
    except RecursionError:
        raise AnnotationError(f'{what} {path} is not valid JSON (nested too deeply)') from None


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def top_level_list(data: Any, key: str, path: str, what: str) -> list:
    """``data[key]``, which must be a list, of a VQAv2 file's top-level object."""
    if not isinstance(data, dict):
        raise AnnotationError(f'{what} {path}: the file holds {describe_value(data)}; '
                              f'expected a JSON object with a "{key}" list')
    if not isinstance(data.get(key), list):
        found = describe_value(data[key]) if key in data else f'keys {sorted(data)[:10]}'
        raise AnnotationError(f'{what} {path}: "{key}" is missing or not a list (found '
                              f'{found}); expected a JSON object with a "{key}" list')
    return data[key]


def check_record(record: Any, where: str, types: Dict[str, tuple]) -> None:
    """Raise :class:`AnnotationError` unless ``record`` is an object holding
    every key of ``types`` with a value of the given kind."""
    if not isinstance(record, dict):
        raise AnnotationError(f'{where}: found {describe_value(record)}; expected a JSON '
                              f'object with keys {sorted(types)}')
    missing = sorted(set(types) - set(record))
    if missing:
        raise AnnotationError(f'{where}: missing {missing}; expected keys {sorted(types)}, '
                              f'found {sorted(record)[:10]}')
    for key, (check, expected) in types.items():
        if not check(record[key]):
            raise AnnotationError(f'{where}: {key} is {describe_value(record[key])}; '
                                  f'expected {expected}')


class BaseMultiModalDataset(BaseDataset):
    """mmengine's ``BaseDataset`` plus file checks and a corrupt-sample policy.

    Args:
        on_bad_sample: what a sample whose pipeline raises a
            :class:`~mmfusion.errors.DataError` (an unreadable image or audio
            file ...) does:

            * ``'raise'`` (default): fail fast, re-raising the error (same
              type) with the dataset, the sample index and the annotation file
              prefixed to its message;
            * ``'skip'``: in training, log a warning naming the sample and the
              error once per process and return another sample instead, chosen
              deterministically from the bad sample's index (so runs stay
              reproducible). The returned data sample carries the number of
              bad samples skipped for it in its metainfo
              (``bad_samples_skipped``), which survives data-loader worker
              processes; ``BadSampleReportHook`` sums it per epoch. In
              ``test_mode`` bad samples always raise: evaluation must see
              every sample.

            Other exceptions are bugs and always propagate unchanged. After
            ``max_refetch`` bad samples in a row, the fetch gives up and
            raises.
        allow_missing_modalities: whether a sample may lack a modality that
            other samples have (a list-file row without ``text``, a VQA
            question whose image file does not exist). ``False`` (default):
            such a sample is an :class:`~mmfusion.errors.AnnotationError`
            naming the row and the missing field. ``True``: the sample's
            ``missing_modalities`` lists it, and the pipeline, the data
            preprocessor and the model carry the mask to the fusion module
            (see docs/missing_modalities.md).
        check_files: check at load time that the local files the annotations
            name exist (one ``os.path.isfile`` each; URIs containing ``://``
            are not checked) and raise :class:`~mmfusion.errors.AnnotationError`
            for the first missing one. With ``False`` a missing file is only
            found when its sample is loaded, where ``on_bad_sample`` applies.
        **kwargs: ``BaseDataset``'s arguments.
    """

    def __init__(self, *args, on_bad_sample: str = 'raise', check_files: bool = True,
                 allow_missing_modalities: bool = False, **kwargs) -> None:
        if on_bad_sample not in BAD_SAMPLE_POLICIES:
            raise ConfigError(f'{type(self).__name__}: on_bad_sample must be one of '
                              f'{list(BAD_SAMPLE_POLICIES)}, got {on_bad_sample!r}')
        if not isinstance(check_files, bool):
            raise ConfigError(f'{type(self).__name__}: check_files must be True or False, '
                              f'got {check_files!r}')
        if not isinstance(allow_missing_modalities, bool):
            raise ConfigError(f'{type(self).__name__}: allow_missing_modalities must be True or '
                              f'False, got {allow_missing_modalities!r}')
        self.allow_missing_modalities = allow_missing_modalities
        # set before BaseDataset.__init__, which loads the annotations
        self.on_bad_sample = on_bad_sample
        self.check_files = check_files
        self._warned_bad_indices = set()
        super().__init__(*args, **kwargs)

    @property
    def annotation_source(self) -> str:
        """The annotation file(s) the samples come from, for messages."""
        return str(self.ann_file)

    def check_files_exist(self, refs: Iterable[Tuple[int, str, str]],
                          where: Callable[[int], str]) -> None:
        """Raise :class:`AnnotationError` if a referenced local file is missing.

        Args:
            refs: ``(record_index, field, path)`` for every file a record names.
            where: record index -> its location for the message (file, line,
                sample index).
        """
        if not self.check_files:
            return
        missing = [(i, field, path) for i, field, path in refs
                   if not is_uri(path) and not osp.isfile(path)]
        if not missing:
            return
        i, field, path = missing[0]
        more = (f' ({len(missing) - 1} more file references are missing too)'
                if len(missing) > 1 else '')
        raise AnnotationError(
            f'{where(i)}: {field} {path!r} is not an existing file{more}; expected the path '
            f'of a file (relative to data_root or absolute). Fix the path or data_root, or '
            f"pass check_files=False to find missing files only when a sample is loaded "
            f"(where on_bad_sample='skip' skips them in training)")

    def _another_index(self, idx: int, attempt: int) -> int:
        """A replacement for the bad sample ``idx``: drawn from a generator seeded
        by ``(idx, attempt)``, not from the global RNGs, so that skipping a sample
        does not shift the random augmentations of every later one."""
        if len(self) < 2:
            return idx
        other = random.Random(idx * 1_000_003 + attempt).randrange(len(self) - 1)
        return other if other < idx else other + 1

    def _bad_sample_prefix(self, idx: int) -> str:
        return f'{type(self).__name__} sample {idx} ({self.annotation_source}): '

    def __getitem__(self, idx: int) -> dict:
        """The ``idx``-th sample after the pipeline, with the corrupt-sample
        policy applied (see the class docstring)."""
        if not self._fully_initialized:
            print_log('Please call `full_init()` method manually to accelerate the speed.',
                      logger='current', level=logging.WARNING)
            self.full_init()
        skipped = 0
        current = idx
        last_error: Optional[DataError] = None
        for attempt in range(self.max_refetch + 1):
            try:
                data = self.prepare_data(current)
            except DataError as e:
                if self.test_mode or self.on_bad_sample == 'raise':
                    suffix = (" (on_bad_sample='skip' applies to training only: evaluation "
                              "must see every sample)"
                              if self.test_mode and self.on_bad_sample == 'skip' else '')
                    raise with_context(e, self._bad_sample_prefix(current), suffix) from e
                skipped += 1
                last_error = e
                replacement = self._another_index(current, attempt)
                self._warn_skipped(current, replacement, e)
                current = replacement
                continue
            if data is None:  # a transform dropped the sample (e.g. ignore_empty=True)
                if self.test_mode:
                    raise DataError(f'{self._bad_sample_prefix(current)}the pipeline returned '
                                    f'None (a transform dropped the sample) in test_mode; '
                                    f'evaluation must see every sample')
                current = self._another_index(current, attempt)
                continue
            if skipped:
                self._record_skipped(data, skipped)
            return data
        reason = (f'the last one failed with {type(last_error).__name__}: {last_error}'
                  if last_error is not None else 'the pipeline returned None for each')
        error = DataError(f'{type(self).__name__} ({self.annotation_source}): no good sample '
                          f'after {self.max_refetch + 1} attempts starting at sample {idx}; '
                          f'{reason}. Most of the data looks unreadable: check data_root and '
                          f'the files')
        raise error from last_error

    def _warn_skipped(self, idx: int, replacement: int, error: DataError) -> None:
        if idx in self._warned_bad_indices:
            return  # once per sample and process: the hook reports the counts
        self._warned_bad_indices.add(idx)
        print_log(f"{self._bad_sample_prefix(idx)}skipped (on_bad_sample='skip'), using sample "
                  f'{replacement} instead: {type(error).__name__}: {error}',
                  logger='current', level=logging.WARNING)

    @staticmethod
    def _record_skipped(data: Any, skipped: int) -> None:
        """Put the skip count into the packed data sample's metainfo; a
        pipeline that packs no data sample gets the warning only."""
        sample = data.get('data_samples') if isinstance(data, dict) else None
        if isinstance(sample, BaseDataElement):
            sample.set_metainfo({BAD_SAMPLES_SKIPPED_KEY: skipped})


__all__ = ['BAD_SAMPLES_SKIPPED_KEY', 'BAD_SAMPLE_POLICIES', 'BaseMultiModalDataset',
           'describe_value', 'is_uri', 'read_text_file', 'with_context']
