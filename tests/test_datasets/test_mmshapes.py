"""Tests of the MMShapes generator (formats, determinism, cross-modal labels)."""
import hashlib
import json
import multiprocessing as mp
import os
import os.path as osp
import wave
from collections import Counter

import cv2
import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO

from mmfusion.datasets import mmshapes
from mmfusion.datasets.mmshapes import (
    COLOR_FREQS,
    COLORS,
    DEFAULT_MMSHAPES,
    MMSHAPES_VERSION,
    SHAPES,
    ensure_mmshapes,
    generate_mmshapes,
    is_valid_layout,
    make_caption,
    normalize_answer,
    sounding_candidates,
)

SMALL = dict(num_train=20, num_val=10, img_size=64, seed=0)


def _load(root, rel):
    with open(osp.join(root, rel), encoding='utf-8') as f:
        return json.load(f)


def _jsonl(root, rel):
    with open(osp.join(root, rel), encoding='utf-8') as f:
        return [json.loads(line) for line in f]


def _tree_hashes(root, subdirs=None):
    """{relative path: sha1} of every file under root (or under subdirs)."""
    hashes = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = osp.join(dirpath, name)
            rel = osp.relpath(path, root)
            if subdirs is None or any(rel.startswith(s) for s in subdirs):
                with open(path, 'rb') as f:
                    hashes[rel] = hashlib.sha1(f.read()).hexdigest()
    return hashes


def _read_wav(path):
    with wave.open(path, 'rb') as f:
        params = (f.getnchannels(), f.getsampwidth(), f.getframerate(), f.getnframes())
        data = np.frombuffer(f.readframes(f.getnframes()), dtype='<i2')
    return params, data


@pytest.fixture(scope='module')
def small_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('mmshapes') / 'data')
    generate_mmshapes(root, **SMALL)
    return root


@pytest.fixture(scope='module')
def medium_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('mmshapes_medium') / 'data')
    generate_mmshapes(root, num_train=200, num_val=0, img_size=48, seed=3)
    return root


def _anns_by_image(coco):
    return {img_id: coco.loadAnns(coco.getAnnIds(imgIds=img_id)) for img_id in coco.getImgIds()}


# --------------------------------------------------------------------------- API & layout
def test_public_constants():
    assert SHAPES == ('circle', 'square', 'triangle')
    assert list(COLORS) == ['red', 'green', 'blue', 'yellow', 'purple', 'cyan']
    assert DEFAULT_MMSHAPES == dict(num_train=2000, num_val=500, img_size=64, seed=0)
    assert isinstance(MMSHAPES_VERSION, int)
    # Pitches must be far apart for the sound to identify the colour.
    freqs = sorted(COLOR_FREQS.values())
    assert all(b / a > 1.2 for a, b in zip(freqs, freqs[1:]))


def test_meta_and_files(small_root):
    meta = _load(small_root, 'meta.json')
    assert meta['version'] == MMSHAPES_VERSION
    assert meta['params'] == SMALL
    assert meta['classes'] == list(SHAPES)
    assert meta['colors'] == list(COLORS)
    assert meta['splits'] == dict(train=20, val=10)
    for split, ids in (('train', range(1, 21)), ('val', range(1_000_001, 1_000_011))):
        for image_id in ids:
            for sub, ext in (('images', 'png'), ('depth', 'png'), ('sem_masks', 'png'),
                             ('inst_masks', 'png'), ('audio', 'wav')):
                assert osp.isfile(osp.join(small_root, sub, split, f'{image_id:06d}.{ext}'))
    rgb = Image.open(osp.join(small_root, 'images/train/000001.png'))
    assert rgb.mode == 'RGB' and rgb.size == (64, 64)


# --------------------------------------------------------------------------- determinism
def test_identical_params_give_identical_bytes(small_root, tmp_path):
    other = str(tmp_path / 'again')
    generate_mmshapes(other, **SMALL)
    first, second = _tree_hashes(small_root), _tree_hashes(other)
    assert len(first) == 5 * 30 + 2 * 9 + 1  # per-scene files, per-split files, meta
    assert first == second


def test_val_independent_of_num_train(small_root, tmp_path):
    other = str(tmp_path / 'fewer_train')
    generate_mmshapes(other, **{**SMALL, 'num_train': 5})
    val_parts = ['images/val', 'depth/val', 'audio/val', 'sem_masks/val', 'inst_masks/val',
                 'annotations/instances_val', 'annotations/captions_val',
                 'annotations/refs_val', 'vqa/v2_OpenEnded_mmshapes_val',
                 'vqa/v2_mmshapes_val', 'classification/val']
    a, b = _tree_hashes(small_root, val_parts), _tree_hashes(other, val_parts)
    assert len(a) == 5 * 10 + 9
    assert a == b
    # ... while the train split really is different in size.
    assert len(os.listdir(osp.join(other, 'images/train'))) == 5


def test_seed_changes_output(small_root, tmp_path):
    other = str(tmp_path / 'seed1')
    generate_mmshapes(other, **{**SMALL, 'num_val': 1, 'seed': 1})
    a = _tree_hashes(small_root, ['images/train/000001'])
    b = _tree_hashes(other, ['images/train/000001'])
    assert a != b


# --------------------------------------------------------------------------- COCO & masks
@pytest.mark.parametrize('split', ['train', 'val'])
def test_instances_masks_and_depth(small_root, split):
    coco = COCO(osp.join(small_root, f'annotations/instances_{split}.json'))
    assert [c['name'] for c in coco.loadCats(coco.getCatIds())] == list(SHAPES)
    assert coco.getCatIds() == [1, 2, 3]
    assert len(coco.getImgIds()) == (20 if split == 'train' else 10)
    ann_ids = [a['id'] for a in coco.dataset['annotations']]
    assert len(ann_ids) == len(set(ann_ids))
    for img_id, anns in _anns_by_image(coco).items():
        img = coco.loadImgs(img_id)[0]
        assert img['file_name'] == f'images/{split}/{img_id:06d}.png'
        assert 2 <= len(anns) <= 4
        assert sum(a['sounding'] for a in anns) == 1
        inst = np.array(Image.open(osp.join(small_root, img['inst_mask_file'])))
        sem = np.array(Image.open(osp.join(small_root, img['sem_mask_file'])))
        depth = cv2.imread(osp.join(small_root, img['depth_file']), cv2.IMREAD_UNCHANGED)
        assert inst.dtype == np.uint8 and sem.dtype == np.uint8
        assert depth.dtype == np.uint16 and depth.shape == (64, 64)
        assert set(np.unique(inst)) == set(range(len(anns) + 1))
        assert (depth[inst == 0] == 10000).all() and (sem[inst == 0] == 0).all()
        for k, ann in enumerate(anns, start=1):
            mask = inst == k
            ys, xs = np.nonzero(mask)
            assert ann['bbox'] == [xs.min(), ys.min(), xs.max() - xs.min() + 1,
                                   ys.max() - ys.min() + 1]
            assert ann['area'] == mask.sum()
            # Every object stays mostly visible (at least ~40 px even at 64 px).
            assert ann['area'] >= 40
            assert (coco.annToMask(ann) == mask).all()
            assert (sem[mask] == ann['category_id']).all()
            assert 1.0 <= ann['distance'] <= 9.0
            assert (depth[mask] == round(ann['distance'] * 1000)).all()
            assert ann['color'] in COLORS and ann['iscrowd'] == 0


def test_rgb_shows_colours_but_not_distance(small_root):
    coco = COCO(osp.join(small_root, 'annotations/instances_train.json'))
    for img_id, anns in _anns_by_image(coco).items():
        img = coco.loadImgs(img_id)[0]
        rgb = np.array(Image.open(osp.join(small_root, img['file_name']))).astype(float)
        inst = np.array(Image.open(osp.join(small_root, img['inst_mask_file'])))
        for k, ann in enumerate(anns, start=1):
            mean = rgb[inst == k].mean(axis=0)
            # Mean colour is the palette colour whatever the distance.
            assert np.abs(mean - COLORS[ann['color']]).max() < 4
        assert np.abs(rgb[inst == 0].mean(axis=0) - 210).max() < 4


# --------------------------------------------------------------------------- audio
def test_audio_pitch_encodes_sounding_colour(small_root):
    coco = COCO(osp.join(small_root, 'annotations/instances_val.json'))
    names = list(COLOR_FREQS)
    log_freqs = np.log(list(COLOR_FREQS.values()))
    for img_id, anns in _anns_by_image(coco).items():
        img = coco.loadImgs(img_id)[0]
        (channels, width, rate, frames), data = _read_wav(osp.join(small_root, img['audio_file']))
        assert (channels, width, rate, frames) == (1, 2, 16000, 16000)
        spectrum = np.abs(np.fft.rfft(data.astype(np.float64)))
        peak = np.fft.rfftfreq(len(data), 1 / rate)[spectrum.argmax()]
        decoded = names[int(np.abs(log_freqs - np.log(peak)).argmin())]
        sounding = [a for a in anns if a['sounding']][0]
        assert decoded == sounding['color']


def test_audio_visual_labels(small_root):
    coco = COCO(osp.join(small_root, 'annotations/instances_train.json'))
    rows = _jsonl(small_root, 'classification/train_av.jsonl')
    by_image = _anns_by_image(coco)
    assert len(rows) == 20
    for img_id, row in zip(sorted(by_image), rows):
        anns = by_image[img_id]
        img = coco.loadImgs(img_id)[0]
        assert row['img_path'] == img['file_name'] and row['audio_path'] == img['audio_file']
        sounding = [a for a in anns if a['sounding']][0]
        assert row['label'] == sounding['category_id'] - 1
        assert row['label_name'] == SHAPES[row['label']]
        shapes = [SHAPES[a['category_id'] - 1] for a in anns]
        colors = [a['color'] for a in anns]
        # The picture alone is ambiguous: candidates of >= 2 shapes ...
        cands = sounding_candidates(shapes, colors)
        assert len({shapes[i] for i in cands}) >= 2
        # ... and the sounding colour names exactly one shape.
        assert anns.index(sounding) in cands
        assert len({s for s, c in zip(shapes, colors) if c == sounding['color']}) == 1


# --------------------------------------------------------------------------- language
def _caption_from_anns(anns):
    return make_caption([SHAPES[a['category_id'] - 1] for a in anns], [a['color'] for a in anns])


def test_caption_wording():
    assert make_caption(['circle', 'square', 'square', 'triangle'],
                        ['red', 'blue', 'blue', 'yellow']) == \
        'a red circle, two blue squares and a yellow triangle.'
    assert make_caption(['circle', 'square'], ['red', 'red']) == 'a red circle and a red square.'
    assert make_caption(['square'] * 3 + ['circle'], ['green'] * 3 + ['cyan']) == \
        'three green squares and a cyan circle.'


def test_captions_and_itm(small_root):
    coco = COCO(osp.join(small_root, 'annotations/instances_train.json'))
    by_image = _anns_by_image(coco)
    caps = _load(small_root, 'annotations/captions_train.json')
    assert [im['id'] for im in caps['images']] == sorted(by_image)
    assert len(caps['annotations']) == 20
    file_name = {img['id']: img['file_name'] for img in caps['images']}
    true_caption = {}
    for cap in caps['annotations']:
        assert cap['caption'] == _caption_from_anns(by_image[cap['image_id']])
        true_caption[file_name[cap['image_id']]] = cap['caption']
    # itm: the negatives are the other scenes' captions, each used once
    itm = _jsonl(small_root, 'classification/train_itm.jsonl')
    assert len(itm) == 40
    for pos, neg in zip(itm[::2], itm[1::2]):
        assert pos['img_path'] == neg['img_path'] and (pos['label'], neg['label']) == (1, 0)
        assert pos['text'] == true_caption[pos['img_path']] and neg['text'] != pos['text']
    assert sorted(r['text'] for r in itm[1::2]) == sorted(true_caption.values())
    # itm_hard: the negatives describe a minimally changed scene
    itm = _jsonl(small_root, 'classification/train_itm_hard.jsonl')
    assert len(itm) == 40
    vocab_true, vocab_false = set(), set()
    for pos, neg in zip(itm[::2], itm[1::2]):
        assert pos['img_path'] == neg['img_path'] and (pos['label'], neg['label']) == (1, 0)
        assert pos['text'] == true_caption[pos['img_path']]
        assert neg['text'] != pos['text']
        # Same structure: only colour/shape words or number words move around.
        assert len(neg['text'].split()) == len(pos['text'].split())
        vocab_true |= set(pos['text'].split())
        vocab_false |= set(neg['text'].split())
    words = {'a', 'and', 'two', 'three'} | set(COLORS) | {s + suf for s in SHAPES
                                                          for suf in ('', 's', ',', 's,', '.',
                                                                      's.')}
    assert vocab_true <= words and vocab_false <= words


def test_perturbed_scene_is_valid_and_different():
    rng = np.random.default_rng(0)
    shapes, colors = ['circle', 'square', 'square'], ['red', 'blue', 'blue']
    for _ in range(50):
        new_s, new_c = mmshapes.perturb_attributes(rng, shapes, colors)
        assert is_valid_layout(new_s, new_c)
        assert make_caption(new_s, new_c) != make_caption(shapes, colors)
        assert sorted(Counter(zip(new_c, new_s)).values()) == [1, 2]


def test_multilabel(small_root):
    coco = COCO(osp.join(small_root, 'annotations/instances_val.json'))
    by_image = _anns_by_image(coco)
    rows = _jsonl(small_root, 'classification/val_multilabel.jsonl')
    for img_id, row in zip(sorted(by_image), rows):
        expected = sorted({list(COLORS).index(a['color']) for a in by_image[img_id]})
        assert row['labels'] == expected


def test_refs_resolve(small_root):
    coco = COCO(osp.join(small_root, 'annotations/instances_train.json'))
    refs = _load(small_root, 'annotations/refs_train.json')
    per_image = Counter(r['image_id'] for r in refs)
    assert set(per_image) == set(coco.getImgIds())
    assert all(1 <= n <= 3 for n in per_image.values())
    assert len({r['ref_id'] for r in refs}) == len(refs)
    for ref in refs:
        anns = coco.loadAnns(coco.getAnnIds(imgIds=ref['image_id']))
        words = ref['sentence'].split()
        assert words[0] == 'the'
        if words[1] in ('nearest', 'farthest'):
            noun = ' '.join(words[2:])
            group = [a for a in anns
                     if noun == 'object' or noun == SHAPES[a['category_id'] - 1]
                     or noun == f'{a["color"]} object']
            dists = sorted(a['distance'] for a in group)
            target = coco.loadAnns(ref['ann_ids'])[0]
            if words[1] == 'nearest':
                assert target['distance'] == dists[0] and dists[1] - dists[0] >= 1.0
            else:
                assert target['distance'] == dists[-1] and dists[-1] - dists[-2] >= 1.0
            assert len(ref['ann_ids']) == 1
        else:
            # Attribute expressions pick exactly the matching objects.
            attrs = words[1:]
            color = attrs[0] if attrs[0] in COLORS else None
            noun = attrs[-1].rstrip('s') if attrs[-1] != 'objects' else 'object'
            expected = [a['id'] for a in anns
                        if (color is None or a['color'] == color)
                        and (noun == 'object' or SHAPES[a['category_id'] - 1] == noun)]
            assert ref['ann_ids'] == expected


# --------------------------------------------------------------------------- VQA
def _vqa(root, split):
    qs = _load(root, f'vqa/v2_OpenEnded_mmshapes_{split}_questions.json')
    anns = _load(root, f'vqa/v2_mmshapes_{split}_annotations.json')
    return qs, anns


def _true_answer(question, anns):
    """Answer a question from the instance annotations."""
    shapes = [SHAPES[a['category_id'] - 1] for a in anns]
    colors = [a['color'] for a in anns]
    words = question.rstrip('?').split()
    if question.startswith('what color is the'):
        return colors[shapes.index(words[-1])]
    if question.startswith('what shape is the'):
        return shapes[colors.index(words[-2])]
    if question.startswith('how many'):
        subject = words[2]  # 'red' (objects) or 'circles'
        if subject in COLORS:
            return str(colors.count(subject))
        return str(shapes.count(subject.rstrip('s')))
    if question.startswith('is there a'):
        return 'yes' if (words[3], words[4]) in set(zip(colors, shapes)) else 'no'
    raise AssertionError(question)


@pytest.mark.parametrize('split', ['train', 'val'])
def test_vqa_format_and_answers(small_root, split):
    qs, anns = _vqa(small_root, split)
    assert qs['task_type'] == 'Open-Ended' and qs['data_subtype'] == split
    coco = COCO(osp.join(small_root, f'annotations/instances_{split}.json'))
    by_image = _anns_by_image(coco)
    questions = qs['questions']
    assert len(questions) == 4 * len(by_image)
    by_qid = {a['question_id']: a for a in anns['annotations']}
    assert len(by_qid) == len(questions) == len(anns['annotations'])
    for q in questions:
        assert q['question_id'] // 10 == q['image_id']
        ann = by_qid[q['question_id']]
        assert ann['image_id'] == q['image_id']
        assert [a['answer_id'] for a in ann['answers']] == list(range(1, 11))
        assert all(a['answer_confidence'] in ('yes', 'maybe', 'no') for a in ann['answers'])
        truth = _true_answer(q['question'], by_image[q['image_id']])
        assert ann['multiple_choice_answer'] == truth
        votes = Counter(normalize_answer(a['answer']) for a in ann['answers'])
        assert votes.most_common(1)[0] == (truth, votes[truth])
        assert 5 <= votes[truth] <= 10
        # Wrong answers stay within the answer type.
        expected_type = {'what color is the': 'other', 'what shape is the': 'other',
                         'how many': 'number', 'is there a': 'yes/no'}[ann['question_type']]
        assert ann['answer_type'] == expected_type
        vocab = {'other': set(COLORS) | set(SHAPES), 'number': set('01234'),
                 'yes/no': {'yes', 'no'}}[expected_type]
        assert set(votes) <= vocab


def test_normalize_answer():
    assert normalize_answer('Two.') == '2'
    assert normalize_answer(' Red ') == 'red'
    assert normalize_answer('Yes!') == 'yes'


def test_vqa_balance(medium_root):
    _, anns = _vqa(medium_root, 'train')
    by_type = {}
    for ann in anns['annotations']:
        by_type.setdefault(ann['question_type'], Counter())[ann['multiple_choice_answer']] += 1
    yes_no = by_type['is there a']
    assert abs(yes_no['yes'] / sum(yes_no.values()) - 0.5) < 0.08
    counts = by_type['how many']
    assert sum(counts.values()) == 200
    for answer in '0123':
        assert 0.15 < counts[answer] / 200 < 0.35, counts
    colors = by_type['what color is the']
    assert max(colors.values()) / sum(colors.values()) < 0.3, colors
    shapes = by_type['what shape is the']
    assert max(shapes.values()) / sum(shapes.values()) < 0.45, shapes
    # Humans disagree a little: ~12% wrong individual answers, a few ambiguous questions.
    right = [sum(normalize_answer(a['answer']) == ann['multiple_choice_answer']
                 for a in ann['answers']) for ann in anns['annotations']]
    assert 0.84 < np.mean(right) / 10 < 0.92
    assert 0.01 < np.mean([r <= 7 for r in right]) < 0.1


def test_distance_not_visible_in_rgb(medium_root):
    """Object size does not depend on distance (no perspective cue)."""
    coco = COCO(osp.join(medium_root, 'annotations/instances_train.json'))
    anns = coco.dataset['annotations']
    corr = np.corrcoef([a['distance'] for a in anns], [a['area'] for a in anns])[0, 1]
    assert abs(corr) < 0.15


# --------------------------------------------------------------------------- ensure_mmshapes
def test_ensure_generates_once(tmp_path):
    root = str(tmp_path / 'mmshapes')
    assert ensure_mmshapes(root, **SMALL) == root
    meta = osp.join(root, 'meta.json')
    stamp = os.stat(meta).st_mtime_ns, os.stat(osp.join(root, 'images/train/000001.png')).st_ino
    assert ensure_mmshapes(root, **SMALL) == root
    assert (os.stat(meta).st_mtime_ns,
            os.stat(osp.join(root, 'images/train/000001.png')).st_ino) == stamp
    assert os.listdir(tmp_path) == ['mmshapes']


def test_ensure_rejects_other_params(tmp_path):
    root = str(tmp_path / 'mmshapes')
    ensure_mmshapes(root, **SMALL)
    with pytest.raises(ValueError, match='mmshapes') as err:
        ensure_mmshapes(root, **{**SMALL, 'seed': 7})
    assert root in str(err.value) and "'seed': 7" in str(err.value)
    assert _load(root, 'meta.json')['params'] == SMALL  # untouched
    with pytest.raises(TypeError):
        ensure_mmshapes(root, num_scenes=3)


def test_ensure_never_touches_foreign_folder(tmp_path):
    root = tmp_path / 'mine'
    root.mkdir()
    (root / 'notes.txt').write_text('precious')
    with pytest.raises(ValueError, match=str(root)):
        ensure_mmshapes(str(root), **SMALL)
    assert (root / 'notes.txt').read_text() == 'precious'
    assert sorted(os.listdir(tmp_path)) == ['mine']


def test_ensure_accepts_empty_folder(tmp_path):
    root = tmp_path / 'empty'
    root.mkdir()
    ensure_mmshapes(str(root), **SMALL)
    assert osp.isfile(root / 'meta.json')


def test_ensure_loses_race_cleanly(tmp_path, monkeypatch):
    """Another process publishes data_root while this one is generating."""
    root = str(tmp_path / 'mmshapes')
    real_generate = mmshapes.generate_mmshapes

    def generate_and_get_overtaken(out_dir, **params):
        real_generate(out_dir, **params)
        real_generate(root, **params)  # the other process wins the rename

    monkeypatch.setattr(mmshapes, 'generate_mmshapes', generate_and_get_overtaken)
    assert ensure_mmshapes(root, **SMALL) == root
    assert os.listdir(tmp_path) == ['mmshapes']
    assert _load(root, 'meta.json')['params'] == SMALL


def _ensure_worker(root, params, barrier):
    barrier.wait()
    ensure_mmshapes(root, **params)


def test_ensure_concurrent_processes(tmp_path):
    root = str(tmp_path / 'mmshapes')
    ctx = mp.get_context('fork')
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_ensure_worker, args=(root, SMALL, barrier)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    assert os.listdir(tmp_path) == ['mmshapes']  # no temporary copies left
    assert _load(root, 'meta.json')['params'] == SMALL
    assert len(os.listdir(osp.join(root, 'images/train'))) == 20
