"""Malformed annotations, images and audio: every failure is a typed DataError naming the file.

Property-based (hypothesis, derandomized): random and corrupted list files
(JSON lines, CSV), VQAv2 question/annotation files, image bytes (including
truncated real PNG/JPEG) and audio bytes (including truncated real WAV) go
into the real dataset classes and loading transforms. Each input either
loads into well-formed samples or raises a ``DataError`` subclass whose
message names the offending file; nothing else may escape. Valid inputs
must load.
"""
import csv
import io
import json
import math
import os.path as osp
import re
import wave

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from mmfusion.datasets import ListClsDataset, VQAv2Dataset
from mmfusion.datasets.transforms import LoadAudioFromFile, LoadImageFromFile
from mmfusion.errors import (
    AnnotationError,
    AudioFileNotFoundError,
    AudioLoadError,
    ConfigError,
    DataError,
    ImageFileNotFoundError,
    ImageLoadError,
)
from mmfusion.utils import register_all_modules

try:
    import soundfile
except ImportError:
    soundfile = None

register_all_modules()

CLASSES = ('cat', 'dog', 'bird')
PATH_KEYS = ('img_path', 'depth_path', 'audio_path')
AUDIO_BACKENDS = ['wave'] + (['soundfile'] if soundfile is not None else [])


def fast(max_examples: int):
    """Reproducible settings that keep the file well under a minute on one core."""
    return settings(max_examples=max_examples, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


@pytest.fixture(scope='module')
def root(tmp_path_factory) -> str:
    """A data root with two real images; file names hold a space and a non-ASCII
    letter, so a message that mangles paths is caught."""
    path = tmp_path_factory.mktemp('bad inputs \u00fc')
    (path / 'images').mkdir()
    for i in range(2):
        assert cv2.imwrite(str(path / 'images' / f'{i}.png'), np.full((4, 4, 3), i, np.uint8))
    return str(path)


def write(path: str, data) -> str:
    with open(path, 'wb') as f:
        f.write(data if isinstance(data, bytes) else data.encode('utf-8'))
    return path


# ---------------------------------------------------------------------------
# Strategies

json_scalars = (st.none() | st.booleans() | st.integers(-3, 2**70) | st.floats()
                | st.text(max_size=6))
json_values = st.recursive(
    json_scalars, lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=4), inner, max_size=3), max_leaves=5)
good_paths = st.sampled_from(['images/0.png', 'images/1.png'])
odd_paths = st.sampled_from(['images/missing.png', '', 'images', 'a\x00b.png',
                             's3://bucket/0.png', 'images/0.png '])
label_values = (st.sampled_from(CLASSES) | st.integers(-2, 4)
                | st.sampled_from(['2', '-1', '7', 'fish', '--1', '\u0663', '\u00b2', ' cat',
                                   '1.0', '', True, False, 1.0, None]))
class_labels = st.sampled_from(CLASSES) | st.integers(0, 2)
finite_vectors = st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=3)
# a row that loads in either label mode, and what can go wrong with each field
good_cls_fields = dict(img_path=good_paths, label=class_labels,
                       labels=st.lists(class_labels, max_size=3))
optional_cls_fields = dict(text=st.text(max_size=8), vector=finite_vectors)
bad_cls_fields = dict(
    img_path=odd_paths | json_values,
    depth_path=good_paths | odd_paths,
    audio_path=odd_paths,
    text=json_values,
    vector=st.lists(st.floats(), max_size=3) | json_values,
    label=label_values | json_values,
    labels=st.lists(label_values | json_values, max_size=3) | json_values,
    note=json_values,
)


@st.composite
def cls_rows(draw) -> dict:
    """A good row (some optional fields) with up to two fields dropped or made bad."""
    row = draw(st.fixed_dictionaries(good_cls_fields, optional=optional_cls_fields))
    for key in draw(st.lists(st.sampled_from(sorted(bad_cls_fields)), max_size=2, unique=True)):
        if draw(st.booleans()):
            row.pop(key, None)
        else:
            row[key] = draw(bad_cls_fields[key])
    return row


jsonl_lines = st.one_of(cls_rows().map(json.dumps), cls_rows().map(json.dumps),
                        json_values.map(json.dumps), st.text(max_size=12), st.just(''))
dataset_options = st.fixed_dictionaries(dict(classes=st.sampled_from([None, CLASSES]),
                                             multi_label=st.booleans(),
                                             test_mode=st.booleans()))


def check_loaded_cls(ds: ListClsDataset, classes, test_mode: bool) -> None:
    """What every sample of a dataset that loaded must look like."""
    assert len(ds) > 0
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        assert any(k in info for k in PATH_KEYS + ('text', 'vector'))
        for key in PATH_KEYS:
            if key in info:
                assert isinstance(info[key], str)
                assert '://' in info[key] or osp.isfile(info[key])
        if 'text' in info:
            assert isinstance(info['text'], str)
        if 'vector' in info:
            assert info['vector'] and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                for v in info['vector'])
        if 'gt_label' in info:
            limit = len(classes) if classes else 2**31
            assert all(type(v) is int and 0 <= v < limit for v in info['gt_label'])
        else:
            assert test_mode


def build_cls(path: str, root: str, options: dict):
    """The dataset, or None after checking that the AnnotationError names the file."""
    try:
        ds = ListClsDataset(path, data_root=root, serialize_data=False, **options)
    except AnnotationError as e:
        event('AnnotationError')
        assert path in str(e)
        return None
    event('loaded')
    check_loaded_cls(ds, options['classes'], options['test_mode'])
    return ds


# ---------------------------------------------------------------------------
# Classification list files


@fast(600)
@given(lines=st.lists(jsonl_lines, max_size=4), options=dataset_options)
def test_jsonl_list_files_load_or_raise_annotation_errors(root, lines, options):
    path = write(osp.join(root, 'list.jsonl'), '\n'.join(lines))
    dataset = build_cls(path, root, options)  # asserts the error names the file
    if dataset is not None:
        assert 0 < len(dataset) <= len(lines)


def csv_cell(value) -> str:
    """A JSON-lines value as a CSV cell: vectors space-separated, label lists with '|'."""
    if isinstance(value, list):
        return ('|' if any(isinstance(v, str) for v in value) else ' ').join(map(str, value))
    return '' if value is None else str(value)


@fast(500)
@given(rows=st.lists(cls_rows(), max_size=4),
       extra_columns=st.lists(st.sampled_from(['', ' label', 'note', 'img_path']), max_size=1),
       raw_cells=st.lists(st.text(alphabet='ab ,"|\n\r.0123-', max_size=6), max_size=3),
       quoted=st.booleans(), options=dataset_options)
def test_csv_list_files_load_or_raise_annotation_errors(root, rows, extra_columns, raw_cells,
                                                        quoted, options):
    header = sorted({key for row in rows for key in row}) + extra_columns
    records = [header] + [[csv_cell(row.get(key)) for key in header] for row in rows]
    if raw_cells:  # a row of stray text: too many fields, quotes, line breaks
        records.append(raw_cells)
    if quoted:  # well-formed CSV
        out = io.StringIO()
        csv.writer(out).writerows(records)
        text = out.getvalue()
    else:  # cells joined by hand: commas, quotes and newlines in cells break the format
        text = '\n'.join(','.join(r) for r in records)
    path = write(osp.join(root, 'list.csv'), text)
    dataset = build_cls(path, root, options)  # asserts the error names the file
    if dataset is not None:
        assert 0 < len(dataset) <= len(rows) + bool(raw_cells)


@fast(60)
@given(data=st.binary(max_size=40) | st.sampled_from([b'\xef\xbb\xbf', b'\xff\xfe{}', b'{"text"'
                                                      b': "\xc3"}', b'\x00\x00']),
       ext=st.sampled_from(['.jsonl', '.csv']))
def test_random_bytes_as_a_list_file(root, data, ext):
    path = write(osp.join(root, 'bytes' + ext), data)
    dataset = build_cls(path, root, dict(classes=None, multi_label=False, test_mode=True))
    # a few bytes can hold at most a handful of rows
    assert dataset is None or 0 < len(dataset) <= max(len(data), 1)


def expected_label(value):
    """The class index a single label value stands for, or None if it is invalid."""
    if isinstance(value, str) and value in CLASSES:
        return CLASSES.index(value)
    if isinstance(value, str) and re.fullmatch(r'-?[0-9]+', value):
        value = int(value)
    if type(value) is int and 0 <= value < len(CLASSES):
        return value
    return None


def expected_field(root: str, field: str, value):
    """What the sample info holds for one field of an otherwise valid row
    (None: the row must be rejected)."""
    if field == 'label':
        index = expected_label(value)
        return None if index is None else [index]
    if field == 'labels':
        if not isinstance(value, list):
            return None
        indices = [expected_label(v) for v in value]
        return None if None in indices else sorted(set(indices))
    if field == 'vector':
        ok = isinstance(value, list) and value and all(
            type(v) in (int, float) and math.isfinite(v) for v in value)
        return value if ok else None
    if field == 'text':
        return value if isinstance(value, str) else None
    if not isinstance(value, str) or not value:  # a path
        return None
    path = value if osp.isabs(value) else osp.join(root, value)
    return path if '://' in path or osp.isfile(path) else None


@fast(500)
@given(field=st.sampled_from(['label', 'labels', 'vector', 'text', 'img_path', 'audio_path']),
       value=label_values | json_values | st.lists(label_values, max_size=3)
       | finite_vectors | good_paths | odd_paths)
def test_each_field_loads_exactly_when_valid(root, field, value):
    """One row, valid but for ``field``: it loads iff ``value`` is valid there."""
    multi_label = field == 'labels'
    row = dict(text='a', labels=[0]) if multi_label else dict(text='a', label=0)
    row[field] = value
    path = write(osp.join(root, 'one.jsonl'), json.dumps(row))
    expected = expected_field(root, field, value)
    key = 'gt_label' if field in ('label', 'labels') else field
    try:
        ds = ListClsDataset(path, data_root=root, classes=CLASSES, multi_label=multi_label,
                                  serialize_data=False)
    except AnnotationError as e:
        event('AnnotationError')
        assert expected is None, f'{row} should load: {e}'
        assert f'{path}, line 1 (sample 0): ' in str(e) and field in str(e)
        return
    event('loaded')
    assert expected is not None, f'{row} should be rejected'
    assert ds.get_data_info(0)[key] == expected


valid_rows = st.fixed_dictionaries(
    dict(img_path=good_paths, label=st.sampled_from(CLASSES) | st.integers(0, 2)),
    optional=dict(text=st.text(max_size=8),
                  vector=st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=3)))


@fast(60)
@given(rows=st.lists(valid_rows, min_size=1, max_size=4), as_csv=st.booleans())
def test_valid_list_files_load(root, rows, as_csv):
    if as_csv:
        assume(all('\r' not in r.get('text', '') and r.get('text') != '' for r in rows))
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=['img_path', 'label', 'text', 'vector'])
        writer.writeheader()
        for row in rows:
            writer.writerow(dict(row, vector=' '.join(repr(v) for v in row.get('vector', []))))
        path = write(osp.join(root, 'valid.csv'), out.getvalue())
    else:
        path = write(osp.join(root, 'valid.jsonl'), '\n'.join(json.dumps(r) for r in rows))
    ds = ListClsDataset(path, data_root=root, classes=CLASSES, serialize_data=False,
                        allow_missing_modalities=True)
    assert len(ds) == len(rows)
    for i, row in enumerate(rows):
        info = ds.get_data_info(i)
        label = row['label']
        assert info['gt_label'] == [CLASSES.index(label) if isinstance(label, str) else label]
        assert info['img_path'] == osp.join(root, row['img_path'])
        assert info.get('text', '') == row.get('text', '')
        assert info.get('vector', []) == row.get('vector', [])


# ---------------------------------------------------------------------------
# VQAv2 question and annotation files

answers = st.lists(st.fixed_dictionaries(dict(answer=st.text(max_size=4))), min_size=1,
                   max_size=3)
bad_vqa_values = (json_values | st.sampled_from([5, True, 1.0, '1', [], [dict(x=1)]])
                  | answers.map(lambda a: a + [dict(answer=1)]))


@st.composite
def vqa_files(draw):
    """A consistent VQAv2 question and annotation file (or no annotations),
    then up to two things broken: a key dropped, a value, a record or a whole
    file replaced, a record repeated or left out, an image that does not exist."""
    ids = draw(st.lists(st.integers(0, 99), max_size=4, unique=True))
    questions = [dict(image_id=draw(st.sampled_from([0, 1])), question=draw(st.text(max_size=8)),
                      question_id=i) for i in ids]
    anns = [dict(question_id=i, answers=draw(answers)) for i in ids]
    files = dict(questions=dict(questions=questions), annotations=dict(annotations=anns))
    for _ in range(draw(st.integers(0, 2))):
        key = draw(st.sampled_from(sorted(files)))
        how = draw(st.sampled_from(['drop', 'replace', 'record', 'repeat', 'leave out',
                                    'missing image', 'file']))
        if how == 'file':
            files[key] = draw(json_values | st.fixed_dictionaries({key: json_values}))
            continue
        records = files[key].get(key) if isinstance(files[key], dict) else None
        if not isinstance(records, list) or not records:
            continue
        j = draw(st.integers(0, len(records) - 1))
        record = records[j]
        if how in ('drop', 'replace') and isinstance(record, dict):
            field = draw(st.sampled_from(sorted(record)))
            if how == 'drop':
                del record[field]
            else:
                record[field] = draw(bad_vqa_values)
        elif how == 'record':
            records[j] = draw(json_values)
        elif how == 'repeat':
            records.append(dict(record) if isinstance(record, dict) else record)
        elif how == 'leave out':
            del records[j]
        elif how == 'missing image' and key == 'questions' and isinstance(record, dict):
            record['image_id'] = 5
    return files['questions'], draw(st.sampled_from([None, files['annotations']]))


@fast(500)
@given(files=vqa_files())
def test_vqa_files_load_or_raise_annotation_errors(root, files):
    questions, annotations = files
    q_path = write(osp.join(root, 'q.json'), json.dumps(questions))
    a_path = '' if annotations is None else write(osp.join(root, 'a.json'),
                                                  json.dumps(annotations))
    try:
        ds = VQAv2Dataset(question_file=q_path, ann_file=a_path,
                          data_prefix=dict(img_path=osp.join(root, 'images')),
                          img_file_template='{image_id}.png', serialize_data=False)
    except AnnotationError as e:
        event('AnnotationError')
        assert q_path in str(e) or (a_path and a_path in str(e))
        return
    event('loaded')
    assert len(ds) > 0
    infos = [ds.get_data_info(i) for i in range(len(ds))]
    assert len({info['question_id'] for info in infos}) == len(ds)  # no repeated question
    for info in infos:
        assert type(info['question_id']) is int and type(info['image_id']) is int
        assert isinstance(info['question'], str) and osp.isfile(info['img_path'])
        if a_path:  # exactly one annotation of the question, and its answers
            matching = [a for a in annotations['annotations']
                        if a['question_id'] == info['question_id']]
            assert len(matching) == 1
            assert info['gt_answers'] == [a['answer'] for a in matching[0]['answers']]
            assert all(isinstance(a, str) for a in info['gt_answers'])


@fast(40)
@given(data=st.binary(max_size=30))
def test_random_bytes_as_vqa_files(root, data):
    path = write(osp.join(root, 'q.json'), data)
    with pytest.raises(AnnotationError, match='q.json'):
        VQAv2Dataset(question_file=path, serialize_data=False)


def test_vqa_image_template_is_checked():
    with pytest.raises(ConfigError, match=r"img_file_template '\{id\}.jpg' cannot format"):
        VQAv2Dataset(question_file='q.json', img_file_template='{id}.jpg')


# ---------------------------------------------------------------------------
# Images


def encoded_image(seed: int, ext: str, size=(5, 7)) -> bytes:
    img = np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(ext, img)
    assert ok
    return buf.tobytes()


def load_image(path: str):
    """The loaded image, or None after checking the error is typed and names the file."""
    try:
        img = LoadImageFromFile()(dict(img_path=path))['img']
    except ImageLoadError as e:
        event('ImageLoadError')
        assert path in str(e)
        return None
    event('decoded')
    return img


IMAGE_FILE = 'an image ü.png'


@fast(200)
@given(data=st.binary(max_size=64)
       | st.tuples(st.sampled_from([b'\x89PNG\r\n\x1a\n', b'\xff\xd8\xff', b'BM', b'GIF89a',
                                    b'RIFF\x00\x00\x00\x00WEBP']), st.binary(max_size=64))
       .map(b''.join))
def test_random_image_bytes(root, data):
    path = write(osp.join(root, IMAGE_FILE), data)
    img = load_image(path)
    if img is not None:
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
    if not data:
        assert img is None


@fast(200)
@given(seed=st.integers(0, 3), ext=st.sampled_from(['.png', '.jpg']), cut=st.floats(0, 1),
       flips=st.lists(st.tuples(st.floats(0, 1), st.integers(1, 255)), max_size=3))
def test_truncated_and_damaged_real_images(root, seed, ext, cut, flips):
    data = encoded_image(seed, ext)
    truncated = data[:int(cut * (len(data) - 1))]  # always at least one byte short
    path = write(osp.join(root, IMAGE_FILE), truncated)
    assert load_image(path) is None  # never a silently partial image
    damaged = bytearray(data)
    for where, xor in flips:
        damaged[int(where * (len(data) - 1))] ^= xor
    img = load_image(write(osp.join(root, IMAGE_FILE), bytes(damaged)))
    if img is not None:
        assert img.shape == (5, 7, 3)


@fast(30)
@given(seed=st.integers(0, 2**16), ext=st.sampled_from(['.png', '.jpg', '.bmp']),
       size=st.tuples(st.integers(1, 9), st.integers(1, 9)))
def test_valid_images_load(root, seed, ext, size):
    data = encoded_image(seed, ext, size)
    img = load_image(write(osp.join(root, 'valid' + ext), data))
    assert img is not None and img.shape == (*size, 3)
    if ext != '.jpg':  # lossless: the pixels come back exactly
        expected = np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
        np.testing.assert_array_equal(img, expected)


def test_missing_and_unreadable_images(root):
    missing = osp.join(root, 'no such image.png')
    with pytest.raises(ImageFileNotFoundError, match=re.escape(missing)):
        LoadImageFromFile()(dict(img_path=missing))
    with pytest.raises(ImageLoadError, match='cannot read image file .*images'):
        LoadImageFromFile()(dict(img_path=osp.join(root, 'images')))  # a folder


@fast(40)
@given(data=st.binary(max_size=32), skip=st.booleans())
def test_dataset_errors_name_sample_and_image(root, data, skip):
    """The dataset's wrapping keeps the type and the image path and adds the sample."""
    bad = write(osp.join(root, 'images', 'bad.png'), data)
    list_file = write(osp.join(root, 'pipe.jsonl'),
                      '{"img_path": "images/bad.png", "label": 0}\n'
                      '{"img_path": "images/0.png", "label": 1}\n')
    ds = ListClsDataset(list_file, data_root=root, on_bad_sample='skip' if skip else 'raise',
                              serialize_data=False, pipeline=[dict(type='LoadImageFromFile'),
                                        dict(type='PackMultiModalInputs')])
    try:
        item = ds[0]
    except ImageLoadError as e:
        assert not skip
        assert str(e).startswith(f'ListClsDataset sample 0 ({list_file}): ')
        assert bad in str(e)
        return
    skipped = item['data_samples'].metainfo.get('bad_samples_skipped', 0)
    assert skipped in (0, 1)
    if skipped:  # replaced by the only other sample
        assert item['data_samples'].img_path == osp.join(root, 'images/0.png')


# ---------------------------------------------------------------------------
# Audio


def wav_bytes(frames: bytes, channels: int, width: int, rate: int) -> bytes:
    out = io.BytesIO()
    with wave.open(out, 'wb') as f:
        f.setnchannels(channels)
        f.setsampwidth(width)
        f.setframerate(rate)
        f.writeframes(frames)
    return out.getvalue()


wav_params = st.tuples(st.integers(1, 2), st.sampled_from([1, 2, 3, 4]),
                       st.sampled_from([8000, 16000, 44100]), st.integers(1, 12))


@st.composite
def real_wavs(draw):
    channels, width, rate, num = draw(wav_params)
    frames = draw(st.binary(min_size=channels * width * num, max_size=channels * width * num))
    return wav_bytes(frames, channels, width, rate), channels, num, rate


AUDIO_FILE = 'a sound ü.wav'


def load_audio(path: str, backend: str):
    """(waveform, rate), or None after checking the error is typed and names the file."""
    try:
        results = LoadAudioFromFile(backend=backend, mono=False)(dict(audio_path=path))
    except AudioLoadError as e:
        event('AudioLoadError')
        assert path in str(e)
        return None
    event('loaded')
    wav = results['audio']
    assert wav.dtype == np.float32 and wav.shape[-1] > 0 and np.isfinite(wav).all()
    assert results['sample_rate'] > 0
    return wav, results['sample_rate']


@fast(300)
@given(data=st.binary(max_size=80)
       | st.tuples(st.sampled_from([b'RIFF', b'RIFF\x24\x00\x00\x00WAVEfmt ', b'FORM', b'.snd',
                                    b'fLaC', b'OggS']), st.binary(max_size=80)).map(b''.join),
       backend=st.sampled_from(AUDIO_BACKENDS))
def test_random_audio_bytes(root, data, backend):
    path = write(osp.join(root, AUDIO_FILE), data)
    loaded = load_audio(path, backend)
    if not data:
        assert loaded is None


@fast(200)
@given(wav=real_wavs(), cut=st.floats(0, 1), backend=st.sampled_from(AUDIO_BACKENDS))
def test_truncated_real_wavs_raise_and_whole_ones_load(root, wav, cut, backend):
    data, channels, num, rate = wav
    path = write(osp.join(root, AUDIO_FILE), data[:int(cut * (len(data) - 1))])
    assert load_audio(path, backend) is None  # never a silently shorter clip
    loaded = load_audio(write(osp.join(root, AUDIO_FILE), data), backend)
    assert loaded is not None
    assert loaded[0].shape == (channels, num) and loaded[1] == rate


@pytest.mark.skipif(soundfile is None, reason='needs soundfile')
@fast(30)
@given(wav=real_wavs())
def test_both_audio_backends_decode_alike(root, wav):
    path = write(osp.join(root, AUDIO_FILE), wav[0])
    by_wave, by_soundfile = load_audio(path, 'wave'), load_audio(path, 'soundfile')
    np.testing.assert_allclose(by_wave[0], by_soundfile[0], atol=1e-6)


@pytest.mark.skipif(soundfile is None, reason='needs soundfile')
@fast(20)
@given(values=st.lists(st.floats(-1, 1, width=32)
                      | st.sampled_from([math.nan, math.inf, -math.inf]), min_size=1, max_size=8))
def test_float_wavs_with_nan_or_inf_raise(root, values):
    path = osp.join(root, 'float.wav')
    soundfile.write(path, np.asarray(values, np.float32), 8000, subtype='FLOAT')
    loaded = load_audio(path, 'soundfile')
    assert (loaded is None) == (not all(math.isfinite(v) for v in values))


def test_missing_audio_is_also_a_file_not_found_error(root):
    missing = osp.join(root, 'no such sound.wav')
    with pytest.raises(AudioFileNotFoundError, match=re.escape(missing)) as info:
        LoadAudioFromFile()(dict(audio_path=missing))
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, DataError)
