"""Language: captions, referring expressions, VQA questions and answers, and
image-text matching pairs, built so that text alone is near chance."""
from collections import Counter
from typing import Dict, List, Sequence, Tuple

import numpy as np

# the one official VQA answer processing: multiple_choice_answer is the
# most common answer under the same rule the metric and the vocabulary use
from mmfusion.evaluation.functional import normalize_answer

from .scenes import MIN_DEPTH_GAP, Scene, is_valid_layout
from .spec import COLOR_NAMES, COLORS, SHAPES

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
_NUM_ANSWERS = 10
_AMBIGUOUS_PROB = 0.05


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
            others = [c for c in COLOR_NAMES if c != color]
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
        alts = [c for c in COLOR_NAMES if c != answer]
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
        pool = [(c, s) for c in COLOR_NAMES for s in SHAPES
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
    unique = [c for c in COLOR_NAMES if color_counts[c] == 1]
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


__all__ = ['itm_with_other_captions', 'make_answers', 'make_caption', 'make_questions',
           'make_refs', 'normalize_answer', 'perturb_attributes']
