"""MMShapes: a small, seeded, multimodal synthetic dataset.

Every scene is an ``img_size x img_size`` RGB picture of 2-4 coloured shapes
(circle, square, triangle) on a light-grey background, plus modalities that
carry information the picture lacks:

* **depth** - each object sits at a random distance (1-9 m) that leaves no
  trace in RGB (no shading, no size cue), so "the nearest square" needs depth;
* **audio** - one object "sounds": a beeping tone whose pitch encodes that
  object's *colour*; the picture shows the candidates and their shapes, the
  sound says which one is sounding;
* **text** - captions, referring expressions, VQA questions and
  image-text-matching pairs, built so that a text-only model is near chance.

The generator writes the formats real datasets use, so the same dataset
classes read real data (COCO, VQAv2, RefCOCO-like refs, jsonl lists)::

    out_dir/
        meta.json                        # written last: marks a complete copy
        images/{split}/{image_id:06d}.png      # RGB uint8
        depth/{split}/{image_id:06d}.png       # uint16, millimetres (bg 10000)
        sem_masks/{split}/{image_id:06d}.png   # uint8, 0 bg, category id 1..3
        inst_masks/{split}/{image_id:06d}.png  # uint8, 0 bg, k = k-th ann (1-based)
        audio/{split}/{image_id:06d}.wav       # 16 kHz mono int16, 1.0 s
        annotations/instances_{split}.json     # COCO instances (+ color,
                                               #   distance, sounding per ann)
        annotations/captions_{split}.json      # COCO captions, 1 per image
        annotations/refs_{split}.json          # [{ref_id, image_id, ann_ids,
                                               #   sentence, split}]
        vqa/v2_OpenEnded_mmshapes_{split}_questions.json   # VQAv2 questions
        vqa/v2_mmshapes_{split}_annotations.json           # VQAv2 answers
        classification/{split}_av.jsonl          # image+audio -> sounding shape
        classification/{split}_itm.jsonl         # image+text -> match (0/1);
                                                 #   negatives: other scenes' captions
        classification/{split}_itm_hard.jsonl    # the same, negatives: the caption
                                                 #   of a minimally changed scene
        classification/{split}_multilabel.jsonl  # image -> colours present

Ids (chosen so that a split's content never depends on the other split's
size): train image ids are ``1..num_train``; val image ids are
``1_000_001..1_000_000 + num_val`` (:data:`VAL_IMAGE_ID_OFFSET`). Inside an
image, annotation ids, VQA question ids and ref ids are
``image_id * 10 + k``. All paths stored in the files are relative to
``out_dir``.

Scene ``i`` of a split draws all of its randomness from
``np.random.default_rng([seed, split_index, i])`` (train 0, val 1), so val
scene ``i`` is the same whatever ``num_train`` is, and equal parameters give
byte-identical files.
"""
import json
import os
import os.path as osp
import shutil
import string
import tempfile
import wave
from collections import Counter
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

MMSHAPES_VERSION: int = 3

SHAPES: Tuple[str, ...] = ('circle', 'square', 'triangle')
COLORS: Dict[str, Tuple[int, int, int]] = {
    'red': (220, 40, 40),
    'green': (40, 170, 60),
    'blue': (40, 80, 220),
    'yellow': (230, 210, 40),
    'purple': (150, 60, 200),
    'cyan': (40, 200, 210),
}
DEFAULT_MMSHAPES: Dict[str, int] = dict(
    num_train=2000, num_val=500, img_size=64, seed=0)

SPLITS: Tuple[str, ...] = ('train', 'val')
VAL_IMAGE_ID_OFFSET: int = 1_000_000

# Audio: one fixed pitch per colour, spaced far enough apart (>= x1.33) that a
# +-2% per-scene jitter never makes two colours confusable.
AUDIO_SAMPLE_RATE: int = 16000
AUDIO_DURATION: float = 1.0
COLOR_FREQS: Dict[str, float] = {
    'red': 300.0,
    'green': 420.0,
    'blue': 560.0,
    'yellow': 740.0,
    'purple': 980.0,
    'cyan': 1300.0,
}

BACKGROUND_GRAY: int = 210
BACKGROUND_DEPTH_MM: int = 10000
MIN_OBJECTS, MAX_OBJECTS = 2, 4
RADIUS_RANGE = (0.15, 0.21)  # fraction of img_size
# Objects sit in distinct cells of a GRID x GRID layout (with jitter), one
# object per cell: big, never overlapping, and aligned with a CNN's coarse
# feature grid, so a small model learns the visual concepts in minutes on a
# CPU while every question still needs the picture.
GRID = 2
DISTANCE_RANGE = (1.0, 9.0)  # metres
MIN_DEPTH_GAP = 1.0  # metres needed before "nearest"/"farthest" is asked

_COLOR_NAMES: Tuple[str, ...] = tuple(COLORS)
_NUMBER_WORDS = ('zero', 'one', 'two', 'three', 'four', 'five', 'six',
                 'seven', 'eight', 'nine', 'ten')
# Colours a careless annotator is most likely to confuse with each colour.
_SIMILAR_COLORS: Dict[str, Tuple[str, ...]] = {
    'red': ('purple', 'yellow'),
    'green': ('cyan', 'yellow'),
    'blue': ('purple', 'cyan'),
    'yellow': ('green', 'red'),
    'purple': ('blue', 'red'),
    'cyan': ('blue', 'green'),
}
_PUNCT_TABLE = str.maketrans('', '', string.punctuation)
_NUM_ANSWERS = 10
_AMBIGUOUS_PROB = 0.05


# --------------------------------------------------------------------------
# Scene description
# --------------------------------------------------------------------------
@dataclass
class ShapeObject:
    """One object of a scene; geometry in pixels, distance in metres."""
    shape: str
    color: str
    cx: float
    cy: float
    radius: float
    distance: float


@dataclass
class Scene:
    """A sampled scene; ``count_query`` is the (kind, value, count) triple the
    scene was built to answer, which keeps "how many" answers flat."""
    objects: List[ShapeObject]
    sounding: int
    count_query: Tuple[str, str, int]


def image_id_for(split: str, index: int) -> int:
    """Image id of the ``index``-th (0-based) scene of ``split``."""
    offset = VAL_IMAGE_ID_OFFSET if split == 'val' else 0
    return offset + index + 1


def sounding_candidates(shapes: Sequence[str],
                        colors: Sequence[str]) -> List[int]:
    """Objects whose colour names a single shape in the scene.

    Only such an object may sound: the pitch tells its colour, and the colour
    must then identify the shape for the audio-visual label to be defined.
    """
    shapes_of: Dict[str, set] = {}
    for shape, color in zip(shapes, colors):
        shapes_of.setdefault(color, set()).add(shape)
    return [i for i, c in enumerate(colors) if len(shapes_of[c]) == 1]


def is_valid_layout(shapes: Sequence[str], colors: Sequence[str]) -> bool:
    """Whether a list of attributes is an admissible MMShapes scene.

    2-4 objects and the sounding candidates span at least two shapes, so the
    picture alone never tells which shape is sounding (and hence the scene
    holds >= 2 colours and >= 2 shapes).
    """
    if not MIN_OBJECTS <= len(shapes) <= MAX_OBJECTS:
        return False
    cands = sounding_candidates(shapes, colors)
    return len({shapes[i] for i in cands}) >= 2


def _sample_attributes(
        rng: np.random.Generator
) -> Tuple[List[str], List[str], Tuple[str, str, int]]:
    """Draw shapes and colours, built around a "how many" query.

    The query (kind, value, count) is drawn first with the count uniform in
    0..3 and the scene is then forced to contain exactly ``count`` objects
    with that value; sampling scenes freely would make "1" dominate.
    """
    kind = 'shape' if rng.random() < 0.5 else 'color'
    values = SHAPES if kind == 'shape' else _COLOR_NAMES
    value = int(rng.integers(len(values)))
    target = int(rng.integers(0, 4))
    while True:
        n = int(rng.integers(MIN_OBJECTS, MAX_OBJECTS + 1))
        if n < target:
            continue
        shape_idx = rng.integers(len(SHAPES), size=n)
        color_idx = rng.integers(len(_COLOR_NAMES), size=n)
        forced = shape_idx if kind == 'shape' else color_idx
        order = rng.permutation(n)
        forced[order[:target]] = value
        for i in order[target:]:
            if forced[i] == value:  # move it to any other value
                forced[i] = (value + rng.integers(1, len(values))) % len(values)
        shapes = [SHAPES[i] for i in shape_idx]
        colors = [_COLOR_NAMES[i] for i in color_idx]
        if is_valid_layout(shapes, colors):
            return shapes, colors, (kind, values[value], target)


def _sample_layout(rng: np.random.Generator, n: int,
                   img_size: int) -> List[Tuple[float, float, float]]:
    """Place ``n`` objects (cx, cy, radius) in distinct cells of the grid."""
    if n > GRID * GRID:
        raise ValueError(f'{n} objects do not fit a {GRID}x{GRID} grid')
    cell = img_size / GRID
    lo, hi = RADIUS_RANGE
    placed: List[Tuple[float, float, float]] = []
    for index in rng.permutation(GRID * GRID)[:n]:
        row, col = divmod(int(index), GRID)
        r = float(rng.uniform(lo, hi) * img_size)
        slack = max(cell / 2 - r - 1.0, 0.0)  # stay inside the cell
        cx = (col + 0.5) * cell + float(rng.uniform(-slack, slack))
        cy = (row + 0.5) * cell + float(rng.uniform(-slack, slack))
        placed.append((cx, cy, r))
    return placed


def sample_scene(rng: np.random.Generator, img_size: int) -> Scene:
    """Sample one scene (attributes, layout, distances, sounding object)."""
    shapes, colors, count_query = _sample_attributes(rng)
    layout = _sample_layout(rng, len(shapes), img_size)
    # Millimetre resolution so the uint16 depth PNG stores it exactly.
    distances = np.round(rng.uniform(*DISTANCE_RANGE, size=len(shapes)), 3)
    objects = [
        ShapeObject(s, c, cx, cy, r, float(d))
        for s, c, (cx, cy, r), d in zip(shapes, colors, layout, distances)
    ]
    cands = sounding_candidates(shapes, colors)
    sounding = cands[int(rng.integers(len(cands)))]
    return Scene(objects, sounding, count_query)


# --------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------
def shape_mask(obj: ShapeObject, img_size: int) -> np.ndarray:
    """Boolean mask of ``obj``, sampled at pixel centres."""
    coords = np.arange(img_size, dtype=np.float64) + 0.5
    x = coords[None, :]
    y = coords[:, None]
    dx, dy, r = x - obj.cx, y - obj.cy, obj.radius
    if obj.shape == 'circle':
        return dx * dx + dy * dy <= r * r
    if obj.shape == 'square':
        return (np.abs(dx) <= r) & (np.abs(dy) <= r)
    if obj.shape == 'triangle':
        # Upward isosceles: apex (cx, cy - r), base from cx - r to cx + r at
        # cy + r, so the half width grows linearly from 0 to r.
        return (dy >= -r) & (dy <= r) & (np.abs(dx) <= (dy + r) / 2)
    raise ValueError(f'unknown shape {obj.shape!r}')


def render_scene(
    scene: Scene, img_size: int, rng: np.random.Generator
) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return (rgb uint8 HxWx3, depth uint16 mm, semantic uint8, instance
    uint8). Later objects are painted over earlier ones."""
    size = (img_size, img_size)
    rgb = np.full(size + (3, ), BACKGROUND_GRAY, dtype=np.float32)
    depth = np.full(size, BACKGROUND_DEPTH_MM, dtype=np.uint16)
    sem = np.zeros(size, dtype=np.uint8)
    inst = np.zeros(size, dtype=np.uint8)
    for k, obj in enumerate(scene.objects, start=1):
        mask = shape_mask(obj, img_size)
        rgb[mask] = COLORS[obj.color]
        depth[mask] = int(round(obj.distance * 1000))
        sem[mask] = SHAPES.index(obj.shape) + 1
        inst[mask] = k
    # Mild sensor-like noise; colours stay unmistakable.
    rgb += rng.normal(0.0, 3.0, size=rgb.shape).astype(np.float32)
    rgb = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    return rgb, depth, sem, inst


def synthesize_audio(scene: Scene, rng: np.random.Generator) -> np.ndarray:
    """2-4 beeps at the sounding object's colour pitch, int16 mono."""
    n_samples = int(AUDIO_SAMPLE_RATE * AUDIO_DURATION)
    color = scene.objects[scene.sounding].color
    freq = COLOR_FREQS[color] * (1.0 + rng.uniform(-0.02, 0.02))
    n_beeps = int(rng.integers(2, 5))
    durations = rng.uniform(0.08, 0.16, size=n_beeps)
    # Split the silent time randomly into lead-in, gaps (>= 40 ms) and tail.
    min_gap = 0.04
    free = AUDIO_DURATION - durations.sum() - min_gap * (n_beeps - 1) - 0.01
    silences = rng.dirichlet(np.ones(n_beeps + 1)) * free
    t = np.arange(n_samples) / AUDIO_SAMPLE_RATE
    signal = np.zeros(n_samples)
    onset = silences[0]
    ramp = int(0.005 * AUDIO_SAMPLE_RATE)  # 5 ms fades avoid clicks
    for i, dur in enumerate(durations):
        start = int(onset * AUDIO_SAMPLE_RATE)
        stop = min(start + int(dur * AUDIO_SAMPLE_RATE), n_samples)
        env = np.ones(stop - start)
        fade = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, ramp))
        env[:ramp] *= fade
        env[-ramp:] *= fade[::-1]
        amp = rng.uniform(0.3, 0.6)
        signal[start:stop] += amp * env * np.sin(2 * np.pi * freq *
                                                 t[start:stop])
        onset += dur + min_gap + silences[i + 1]
    signal += rng.normal(0.0, rng.uniform(0.01, 0.03), size=n_samples)
    return np.clip(np.rint(signal * 32767), -32768, 32767).astype(np.int16)


# --------------------------------------------------------------------------
# Language
# --------------------------------------------------------------------------
def _plural(shape: str) -> str:
    return shape + 's'


def make_caption(shapes: Sequence[str], colors: Sequence[str]) -> str:
    """E.g. "a red circle, two blue squares and a yellow triangle."

    Identical colour+shape objects are grouped, in order of first appearance.
    """
    groups = Counter(zip(colors, shapes))  # keeps first-appearance order
    parts = []
    for (color, shape), n in groups.items():
        if n == 1:
            parts.append(f'a {color} {shape}')
        else:
            parts.append(f'{_NUMBER_WORDS[n]} {color} {_plural(shape)}')
    if len(parts) == 1:
        return parts[0] + '.'
    return ', '.join(parts[:-1]) + ' and ' + parts[-1] + '.'


def perturb_attributes(
        rng: np.random.Generator, shapes: Sequence[str],
        colors: Sequence[str]) -> Tuple[List[str], List[str]]:
    """A slightly different valid scene, for a false image-text pair.

    One group of identical objects changes colour, or changes shape, or two
    groups swap their counts ("two red circles and a blue square" -> "a red
    circle and two blue squares"). Groups never merge or split, so the false
    caption has exactly the structure (group count, number words, length) of
    the true one and the result is an admissible scene: text alone cannot
    tell them apart.
    """
    groups = list(Counter(zip(colors, shapes)).items())
    for _ in range(1000):
        pairs = [pair for pair, _ in groups]
        counts = [n for _, n in groups]
        g = int(rng.integers(len(groups)))
        color, shape = pairs[g]
        change = ('color', 'shape', 'count')[int(rng.integers(3))]
        if change == 'color':
            others = [c for c in _COLOR_NAMES if c != color]
            pairs[g] = (others[int(rng.integers(len(others)))], shape)
        elif change == 'shape':
            others = [s for s in SHAPES if s != shape]
            pairs[g] = (color, others[int(rng.integers(len(others)))])
        else:
            partners = [h for h in range(len(groups)) if counts[h] != counts[g]]
            if not partners:
                continue
            h = partners[int(rng.integers(len(partners)))]
            counts[g], counts[h] = counts[h], counts[g]
        if len(set(pairs)) < len(pairs):
            continue  # would merge two groups
        new_c = [c for (c, _), n in zip(pairs, counts) for _ in range(n)]
        new_s = [s for (_, s), n in zip(pairs, counts) for _ in range(n)]
        if is_valid_layout(new_s, new_c):
            return new_s, new_c
    raise RuntimeError(f'cannot perturb scene {list(zip(colors, shapes))}')


def make_refs(scene: Scene,
              rng: np.random.Generator) -> List[Tuple[List[int], str]]:
    """1-3 referring expressions as (object indices, sentence).

    Distance-based expressions ("the nearest square") are favoured when
    available because only depth resolves them; they are produced only when
    the winner is at least ``MIN_DEPTH_GAP`` metres ahead of the runner-up.
    """
    objs = scene.objects
    cands: List[Tuple[List[int], str, float]] = []

    def add(idx: List[int], singular: str, plural: str) -> None:
        cands.append((idx, singular if len(idx) == 1 else plural, 1.0))

    pairs = Counter((o.color, o.shape) for o in objs)
    for color, shape in pairs:
        idx = [i for i, o in enumerate(objs)
               if o.color == color and o.shape == shape]
        add(idx, f'the {color} {shape}', f'the {color} {_plural(shape)}')
    for color in dict.fromkeys(o.color for o in objs):
        idx = [i for i, o in enumerate(objs) if o.color == color]
        add(idx, f'the {color} object', f'the {color} objects')
    for shape in dict.fromkeys(o.shape for o in objs):
        idx = [i for i, o in enumerate(objs) if o.shape == shape]
        add(idx, f'the {shape}', f'the {_plural(shape)}')

    groups: List[Tuple[List[int], str]] = [(list(range(len(objs))), 'object')]
    for shape in dict.fromkeys(o.shape for o in objs):
        groups.append(([i for i, o in enumerate(objs) if o.shape == shape],
                       shape))
    for color in dict.fromkeys(o.color for o in objs):
        groups.append(([i for i, o in enumerate(objs) if o.color == color],
                       f'{color} object'))
    for idx, noun in groups:
        if len(idx) < 2:
            continue
        by_dist = sorted(idx, key=lambda i: objs[i].distance)
        dists = [objs[i].distance for i in by_dist]
        if dists[1] - dists[0] >= MIN_DEPTH_GAP:
            cands.append(([by_dist[0]], f'the nearest {noun}', 3.0))
        if dists[-1] - dists[-2] >= MIN_DEPTH_GAP:
            cands.append(([by_dist[-1]], f'the farthest {noun}', 3.0))

    weights = np.array([w for _, _, w in cands])
    k = min(int(rng.integers(1, 4)), len(cands))
    chosen = rng.choice(len(cands), size=k, replace=False,
                        p=weights / weights.sum())
    return [(cands[i][0], cands[i][1]) for i in sorted(chosen)]


# VQA ----------------------------------------------------------------------
def normalize_answer(answer: str) -> str:
    """Lower-case, drop punctuation and extra spaces, number words -> digits.

    This is the equivalence used to pick ``multiple_choice_answer``; all
    surface forms written by :func:`make_answers` normalise to the canonical
    answer.
    """
    text = answer.lower().translate(_PUNCT_TABLE)
    words = [
        str(_NUMBER_WORDS.index(w)) if w in _NUMBER_WORDS else w
        for w in text.split()
    ]
    return ' '.join(words)


def _surface_form(rng: np.random.Generator, answer: str,
                  answer_type: str) -> str:
    """An equivalent spelling of ``answer`` as a human might type it."""
    if answer_type == 'number' and rng.random() < 0.3:
        answer = _NUMBER_WORDS[int(answer)]
    u = rng.random()
    if u < 0.70:
        return answer
    if u < 0.85:
        return answer.capitalize()
    if u < 0.93:
        return answer + '.'
    return answer + ' '


def _wrong_answers(answer: str, answer_type: str) -> Tuple[List[str],
                                                           List[float]]:
    """Plausible mistakes of the same type, with their relative odds."""
    if answer_type == 'yes/no':
        return ['no' if answer == 'yes' else 'yes'], [1.0]
    if answer_type == 'number':
        n = int(answer)
        alts = [str(m) for m in range(0, 5) if m != n]
        return alts, [4.0 if abs(int(a) - n) == 1 else 1.0 for a in alts]
    if answer in COLORS:
        alts = [c for c in _COLOR_NAMES if c != answer]
        return alts, [3.0 if a in _SIMILAR_COLORS[answer] else 1.0
                      for a in alts]
    return [s for s in SHAPES if s != answer], [1.0, 1.0]


def make_answers(rng: np.random.Generator, answer: str,
                 answer_type: str) -> Tuple[List[dict], str]:
    """Ten VQAv2-style human answers and the ``multiple_choice_answer``.

    Usually 8-10 annotators are right (each with probability 0.85-0.9); about
    5% of questions are ambiguous with only 5-7 right. Each wrong answer is
    kept below the number of right ones, so the majority stays correct.
    """
    ambiguous = rng.random() < _AMBIGUOUS_PROB
    if ambiguous:
        n_right = int(rng.integers(5, 8))
    else:
        n_right = max(8, int(rng.binomial(_NUM_ANSWERS,
                                          rng.uniform(0.85, 0.9))))
    alts, odds = _wrong_answers(answer, answer_type)
    raw: List[Tuple[str, bool]] = [(answer, True)] * n_right
    used = Counter()
    for _ in range(_NUM_ANSWERS - n_right):
        open_alts = [i for i, a in enumerate(alts) if used[a] < n_right - 1]
        if not open_alts:  # e.g. yes/no with 5 right: one more right answer
            raw.append((answer, True))
            continue
        p = np.array([odds[i] for i in open_alts])
        alt = alts[open_alts[int(rng.choice(len(open_alts), p=p / p.sum()))]]
        used[alt] += 1
        raw.append((alt, False))
    order = rng.permutation(_NUM_ANSWERS)
    answers = []
    for answer_id, j in enumerate(order, start=1):
        text, right = raw[j]
        if right:
            conf = ('yes', 'maybe')[int(rng.random() < (0.5 if ambiguous
                                                         else 0.15))]
        else:
            conf = ('yes', 'maybe', 'no')[int(rng.choice(3, p=[.3, .5, .2]))]
        answers.append(
            dict(answer=_surface_form(rng, text, answer_type),
                 answer_confidence=conf, answer_id=answer_id))
    votes = Counter(normalize_answer(a['answer']) for a in answers)
    return answers, votes.most_common(1)[0][0]


def _yes_no_question(rng: np.random.Generator, scene: Scene,
                     asked: set) -> Tuple[str, str, str, str]:
    """A fair coin decides the answer; the pair is then uniform among the
    present (yes) or absent (no) colour+shape pairs, so the question text
    says nothing about the answer."""
    present = list(dict.fromkeys((o.color, o.shape) for o in scene.objects))
    if rng.random() < 0.5:
        answer, pool = 'yes', present
    else:
        answer = 'no'
        pool = [(c, s) for c in _COLOR_NAMES for s in SHAPES
                if (c, s) not in present]
    fresh = [p for p in pool if p not in asked] or pool
    color, shape = fresh[int(rng.integers(len(fresh)))]
    asked.add((color, shape))
    return f'is there a {color} {shape}?', 'is there a', 'yes/no', answer


def make_questions(scene: Scene,
                   rng: np.random.Generator) -> List[Tuple[str, str, str,
                                                           str]]:
    """Four (question, question_type, answer_type, answer) tuples.

    Slots: colour-of-shape, shape-of-colour, how-many, is-there. The first two
    need a shape (colour) that occurs exactly once; when there is none the
    slot gets another is-there question, which keeps every type balanced.
    """
    objs = scene.objects
    asked: set = set()
    questions = []

    shape_counts = Counter(o.shape for o in objs)
    unique = [s for s in SHAPES if shape_counts[s] == 1]
    if unique:
        shape = unique[int(rng.integers(len(unique)))]
        color = next(o.color for o in objs if o.shape == shape)
        questions.append((f'what color is the {shape}?', 'what color is the',
                          'other', color))
    else:
        questions.append(_yes_no_question(rng, scene, asked))

    color_counts = Counter(o.color for o in objs)
    unique = [c for c in _COLOR_NAMES if color_counts[c] == 1]
    if unique:
        color = unique[int(rng.integers(len(unique)))]
        shape = next(o.shape for o in objs if o.color == color)
        questions.append((f'what shape is the {color} object?',
                          'what shape is the', 'other', shape))
    else:
        questions.append(_yes_no_question(rng, scene, asked))

    kind, value, count = scene.count_query
    subject = _plural(value) if kind == 'shape' else f'{value} objects'
    questions.append((f'how many {subject} are there?', 'how many', 'number',
                      str(count)))

    questions.append(_yes_no_question(rng, scene, asked))
    return questions


# --------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------
def _rle(mask: np.ndarray) -> dict:
    """COCO compressed RLE with ``counts`` as a str (JSON-serialisable)."""
    from pycocotools import mask as mask_utils
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return dict(size=[int(v) for v in rle['size']],
                counts=rle['counts'].decode('utf-8'))


def _write_wav(path: str, samples: np.ndarray) -> None:
    with wave.open(path, 'wb') as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(AUDIO_SAMPLE_RATE)
        f.writeframes(samples.astype('<i2').tobytes())


def _dump_json(obj, path: str) -> None:
    # json.dumps uses the C encoder; json.dump would encode in pure Python.
    with open(path, 'w', encoding='utf-8') as f:
        f.write(json.dumps(obj))


def _dump_jsonl(rows: List[dict], path: str) -> None:
    with open(path, 'w', encoding='utf-8') as f:
        for row in rows:
            f.write(json.dumps(row) + '\n')


class _SplitRecords:
    """Accumulates the annotation records of one split."""

    def __init__(self) -> None:
        self.images: List[dict] = []
        self.instances: List[dict] = []
        self.captions: List[dict] = []
        self.refs: List[dict] = []
        self.questions: List[dict] = []
        self.answers: List[dict] = []
        self.av: List[dict] = []
        self.itm_hard: List[dict] = []
        self.multilabel: List[dict] = []


def _scene_files(split: str, image_id: int) -> Dict[str, str]:
    stem = f'{image_id:06d}'
    return dict(
        file_name=f'images/{split}/{stem}.png',
        depth_file=f'depth/{split}/{stem}.png',
        audio_file=f'audio/{split}/{stem}.wav',
        sem_mask_file=f'sem_masks/{split}/{stem}.png',
        inst_mask_file=f'inst_masks/{split}/{stem}.png',
    )


def _generate_scene(out_dir: str, split: str, index: int, img_size: int,
                    seed: int, records: _SplitRecords) -> None:
    """Sample, render and write one scene; append its annotations."""
    rng = np.random.default_rng([seed, SPLITS.index(split), index])
    scene = sample_scene(rng, img_size)
    rgb, depth, sem, inst = render_scene(scene, img_size, rng)
    audio = synthesize_audio(scene, rng)

    image_id = image_id_for(split, index)
    files = _scene_files(split, image_id)
    Image.fromarray(rgb).save(osp.join(out_dir, files['file_name']))
    Image.fromarray(depth).save(osp.join(out_dir, files['depth_file']))
    Image.fromarray(sem).save(osp.join(out_dir, files['sem_mask_file']))
    Image.fromarray(inst).save(osp.join(out_dir, files['inst_mask_file']))
    _write_wav(osp.join(out_dir, files['audio_file']), audio)
    records.images.append(
        dict(id=image_id, height=img_size, width=img_size, **files))

    ann_ids = []
    for k, obj in enumerate(scene.objects, start=1):
        mask = inst == k
        ys, xs = np.nonzero(mask)
        ann_id = image_id * 10 + k
        ann_ids.append(ann_id)
        records.instances.append(
            dict(id=ann_id, image_id=image_id,
                 category_id=SHAPES.index(obj.shape) + 1,
                 bbox=[int(xs.min()), int(ys.min()),
                       int(xs.max() - xs.min() + 1),
                       int(ys.max() - ys.min() + 1)],
                 area=int(mask.sum()), iscrowd=0, segmentation=_rle(mask),
                 color=obj.color, distance=obj.distance,
                 sounding=k - 1 == scene.sounding))

    shapes = [o.shape for o in scene.objects]
    colors = [o.color for o in scene.objects]
    caption = make_caption(shapes, colors)
    records.captions.append(
        dict(id=image_id * 10, image_id=image_id, caption=caption))

    for k, (idx, sentence) in enumerate(make_refs(scene, rng)):
        records.refs.append(
            dict(ref_id=image_id * 10 + k, image_id=image_id, split=split,
                 ann_ids=[ann_ids[i] for i in idx], sentence=sentence))

    for k, (question, qtype, atype, answer) in enumerate(
            make_questions(scene, rng)):
        qid = image_id * 10 + k
        answers, mc_answer = make_answers(rng, answer, atype)
        records.questions.append(
            dict(image_id=image_id, question=question, question_id=qid))
        records.answers.append(
            dict(question_id=qid, image_id=image_id, question_type=qtype,
                 answer_type=atype, multiple_choice_answer=mc_answer,
                 answers=answers))

    sounding_shape = scene.objects[scene.sounding].shape
    records.av.append(
        dict(img_path=files['file_name'], audio_path=files['audio_file'],
             label=SHAPES.index(sounding_shape), label_name=sounding_shape))
    false_caption = make_caption(*perturb_attributes(rng, shapes, colors))
    records.itm_hard.append(dict(img_path=files['file_name'], text=caption,
                                 label=1))
    records.itm_hard.append(dict(img_path=files['file_name'],
                                 text=false_caption, label=0))
    records.multilabel.append(
        dict(img_path=files['file_name'],
             labels=sorted({_COLOR_NAMES.index(c) for c in colors})))


def _info(split: str) -> dict:
    # Deliberately free of dates and of the other split's size, so files are
    # reproducible and val files do not depend on num_train.
    return dict(description=f'MMShapes synthetic multimodal dataset '
                f'({split})', version=str(MMSHAPES_VERSION),
                url='', contributor='mmfusion')


def itm_with_other_captions(itm_hard: List[dict],
                            rng: np.random.Generator) -> List[dict]:
    """Image-text pairs whose negatives are the captions of other scenes.

    ``itm_hard`` alternates (true caption, minimally changed caption) per
    image. Here each image's negative is the true caption of another scene
    (a random permutation without fixed points, and never a caption equal to
    the image's own), so every caption appears once as a positive and once
    as a negative: text alone, like the image alone, is at chance. An image
    for which no such caption exists (tiny splits) keeps its hard negative.
    """
    positives = itm_hard[::2]
    captions = [row['text'] for row in positives]
    n = len(captions)
    best, best_clashes = None, n + 1
    for _ in range(100 if n > 1 else 0):
        perm = rng.permutation(n)
        clashes = sum(captions[j] == captions[i] for i, j in enumerate(perm))
        if clashes < best_clashes:
            best, best_clashes = perm, clashes
        if clashes == 0:
            break
    rows = []
    for i, pos in enumerate(positives):
        rows.append(pos)
        if best is None or captions[best[i]] == captions[i]:
            rows.append(itm_hard[2 * i + 1])
        else:
            rows.append(dict(pos, text=captions[best[i]], label=0))
    return rows


def _write_split(out_dir: str, split: str, rec: _SplitRecords,
                 seed: int) -> None:
    ann_dir = osp.join(out_dir, 'annotations')
    categories = [dict(id=i + 1, name=s, supercategory='shape')
                  for i, s in enumerate(SHAPES)]
    _dump_json(
        dict(info=_info(split), licenses=[], images=rec.images,
             annotations=rec.instances, categories=categories),
        osp.join(ann_dir, f'instances_{split}.json'))
    _dump_json(
        dict(info=_info(split), licenses=[], images=rec.images,
             annotations=rec.captions),
        osp.join(ann_dir, f'captions_{split}.json'))
    _dump_json(rec.refs, osp.join(ann_dir, f'refs_{split}.json'))

    vqa_dir = osp.join(out_dir, 'vqa')
    _dump_json(
        dict(info=_info(split), task_type='Open-Ended', data_type='mmshapes',
             data_subtype=split, license={}, questions=rec.questions),
        osp.join(vqa_dir, f'v2_OpenEnded_mmshapes_{split}_questions.json'))
    _dump_json(
        dict(info=_info(split), data_type='mmshapes', data_subtype=split,
             license={}, annotations=rec.answers),
        osp.join(vqa_dir, f'v2_mmshapes_{split}_annotations.json'))

    cls_dir = osp.join(out_dir, 'classification')
    _dump_jsonl(rec.av, osp.join(cls_dir, f'{split}_av.jsonl'))
    # scene rngs use [seed, split, index < 1_000_000]: this one never equals them
    itm_rng = np.random.default_rng([seed, SPLITS.index(split), 1_000_003])
    _dump_jsonl(itm_with_other_captions(rec.itm_hard, itm_rng),
                osp.join(cls_dir, f'{split}_itm.jsonl'))
    _dump_jsonl(rec.itm_hard, osp.join(cls_dir, f'{split}_itm_hard.jsonl'))
    _dump_jsonl(rec.multilabel, osp.join(cls_dir,
                                         f'{split}_multilabel.jsonl'))


def _check_params(num_train: int, num_val: int, img_size: int,
                  seed: int) -> None:
    for name, value in dict(num_train=num_train, num_val=num_val,
                            img_size=img_size, seed=seed).items():
        if not isinstance(value, (int, np.integer)) or isinstance(
                value, bool):
            raise TypeError(f'{name} must be an int, got {value!r}')
    if not 0 <= num_train < VAL_IMAGE_ID_OFFSET:
        raise ValueError(f'num_train must be in [0, {VAL_IMAGE_ID_OFFSET})')
    if not 0 <= num_val < VAL_IMAGE_ID_OFFSET:
        raise ValueError(f'num_val must be in [0, {VAL_IMAGE_ID_OFFSET})')
    if img_size < 32:
        raise ValueError(f'img_size must be >= 32, got {img_size}')
    if seed < 0:
        raise ValueError(f'seed must be >= 0, got {seed}')


def generate_mmshapes(out_dir: str,
                      num_train: int = 2000,
                      num_val: int = 500,
                      img_size: int = 64,
                      seed: int = 0) -> None:
    """Write MMShapes into ``out_dir`` (created if needed).

    Files already there are overwritten, not removed. ``meta.json`` is
    written last, so its presence marks a complete copy. Prefer
    :func:`ensure_mmshapes`, which is atomic and safe under concurrency.
    """
    _check_params(num_train, num_val, img_size, seed)
    params = dict(num_train=int(num_train), num_val=int(num_val),
                  img_size=int(img_size), seed=int(seed))
    meta_path = osp.join(out_dir, 'meta.json')
    if osp.exists(meta_path):
        os.remove(meta_path)  # an interrupted rewrite must not look complete
    sizes = dict(train=params['num_train'], val=params['num_val'])
    for sub in ('images', 'depth', 'sem_masks', 'inst_masks', 'audio'):
        for split in SPLITS:
            os.makedirs(osp.join(out_dir, sub, split), exist_ok=True)
    for sub in ('annotations', 'vqa', 'classification'):
        os.makedirs(osp.join(out_dir, sub), exist_ok=True)

    for split in SPLITS:
        records = _SplitRecords()
        for index in range(sizes[split]):
            _generate_scene(out_dir, split, index, params['img_size'],
                            params['seed'], records)
        _write_split(out_dir, split, records, params['seed'])

    meta = dict(version=MMSHAPES_VERSION, params=params,
                classes=list(SHAPES), colors=list(COLORS), splits=sizes,
                image_id_offsets=dict(train=0, val=VAL_IMAGE_ID_OFFSET))
    _dump_json(meta, meta_path)


# --------------------------------------------------------------------------
# Generate-on-first-use
# --------------------------------------------------------------------------
def _read_meta(data_root: str) -> Optional[dict]:
    meta_path = osp.join(data_root, 'meta.json')
    if not osp.isfile(meta_path):
        return None
    with open(meta_path, encoding='utf-8') as f:
        return json.load(f)


def _check_existing(data_root: str, params: dict, any_params: bool = False) -> bool:
    """True if ``data_root`` holds this exact MMShapes (with ``any_params``:
    this version, whatever its sizes), False if it does not exist (or is an
    empty folder); raise ValueError otherwise."""
    if not osp.exists(data_root):
        return False
    meta = _read_meta(data_root)
    if meta is None:
        if osp.isdir(data_root) and not os.listdir(data_root):
            return False
        raise ValueError(
            f'{data_root!r} exists but is not an MMShapes dataset (no '
            f'meta.json); refusing to touch it. Choose another data_root or '
            f'remove that folder yourself.')
    found = dict(version=meta.get('version'), **meta.get('params', {}))
    wanted = dict(version=MMSHAPES_VERSION, **params)
    if any_params:
        found, wanted = found['version'], wanted['version']
    if found != wanted:
        raise ValueError(
            f'{data_root!r} holds MMShapes generated with {found}, but '
            f'{wanted} was requested. Delete the folder {data_root!r} to '
            f'regenerate it, or choose another data_root.')
    return True


def ensure_mmshapes(data_root: str, **params) -> str:
    """Generate into data_root unless a complete copy with the same params and
    version is already there; return data_root.

    Without ``params``, any complete copy of the current version is accepted
    (whatever its sizes), and the defaults are generated if there is none;
    pass params to insist on a particular copy.

    Safe when several processes (distributed ranks) call it at once: each
    generates into a unique temporary sibling directory (meta.json written
    last) and ``os.rename``-s it onto ``data_root``; a process whose rename
    loses the race deletes its temporary copy and uses the winner's.

    Raises:
        ValueError: ``data_root`` holds MMShapes with other params/version,
            or is a non-empty folder that is not MMShapes (never deleted).
        TypeError: unknown parameter names.
    """
    unknown = set(params) - set(DEFAULT_MMSHAPES)
    if unknown:
        raise TypeError(f'unknown MMShapes parameters: {sorted(unknown)}')
    any_params = not params
    params = {**DEFAULT_MMSHAPES, **params}
    _check_params(**params)
    params = {k: int(v) for k, v in params.items()}
    if _check_existing(data_root, params, any_params):
        return data_root

    from mmengine.logging import print_log
    print_log(f'Generating MMShapes v{MMSHAPES_VERSION} {params} into '
              f'{data_root} ...', logger='current')
    target = osp.abspath(data_root)
    parent = osp.dirname(target)
    os.makedirs(parent, exist_ok=True)
    tmp_dir = tempfile.mkdtemp(prefix=f'.{osp.basename(target)}.tmp-',
                               dir=parent)
    os.chmod(tmp_dir, 0o755)  # mkdtemp makes it private; the data is not
    try:
        generate_mmshapes(tmp_dir, **params)
        if osp.isdir(target) and not os.listdir(target):
            try:
                os.rmdir(target)  # empty placeholder; cannot hold user data
            except OSError:
                pass  # someone else just filled or removed it
        try:
            os.rename(tmp_dir, target)
        except OSError:
            # Another process won the race; its copy must be the one wanted.
            if not _check_existing(data_root, params, any_params):
                raise
    finally:
        if osp.exists(tmp_dir):
            shutil.rmtree(tmp_dir, ignore_errors=True)
    return data_root


def mmshapes_stats(data_root: str, split: str = 'train') -> Dict[str, dict]:
    """Share of each VQA ``multiple_choice_answer`` per answer type."""
    path = osp.join(data_root, 'vqa', f'v2_mmshapes_{split}_annotations.json')
    with open(path, encoding='utf-8') as f:
        anns = json.load(f)['annotations']
    per_type: Dict[str, Counter] = {}
    for ann in anns:
        per_type.setdefault(ann['answer_type'],
                            Counter())[ann['multiple_choice_answer']] += 1
    return {
        atype: {a: n / sum(c.values()) for a, n in sorted(c.items())}
        for atype, c in per_type.items()
    }


__all__ = [
    'MMSHAPES_VERSION', 'SHAPES', 'COLORS', 'DEFAULT_MMSHAPES', 'COLOR_FREQS',
    'AUDIO_SAMPLE_RATE', 'VAL_IMAGE_ID_OFFSET', 'ShapeObject', 'Scene',
    'image_id_for', 'sample_scene', 'render_scene', 'synthesize_audio',
    'make_caption', 'make_refs', 'make_questions', 'make_answers',
    'normalize_answer', 'perturb_attributes', 'is_valid_layout',
    'sounding_candidates', 'generate_mmshapes', 'ensure_mmshapes',
    'mmshapes_stats'
]
