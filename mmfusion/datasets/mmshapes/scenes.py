"""Scene sampling: which shapes, colours, places and distances a scene has.

A :class:`Scene` is pure description (no pixels); :mod:`.render`,
:mod:`.audio` and :mod:`.language` turn it into the modalities.
"""
from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

import numpy as np

from .spec import COLOR_NAMES, SHAPES

MIN_OBJECTS, MAX_OBJECTS = 2, 4
RADIUS_RANGE = (0.15, 0.21)  # fraction of img_size
# Objects sit in distinct cells of a GRID x GRID layout (with jitter), one
# object per cell: big, never overlapping, and aligned with a CNN's coarse
# feature grid, so a small model learns the visual concepts in minutes on a
# CPU while every question still needs the picture.
GRID = 2
DISTANCE_RANGE = (1.0, 9.0)  # metres
MIN_DEPTH_GAP = 1.0  # metres needed before "nearest"/"farthest" is asked


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
    values = SHAPES if kind == 'shape' else COLOR_NAMES
    value = int(rng.integers(len(values)))
    target = int(rng.integers(0, 4))
    while True:
        n = int(rng.integers(MIN_OBJECTS, MAX_OBJECTS + 1))
        if n < target:
            continue
        shape_idx = rng.integers(len(SHAPES), size=n)
        color_idx = rng.integers(len(COLOR_NAMES), size=n)
        forced = shape_idx if kind == 'shape' else color_idx
        order = rng.permutation(n)
        forced[order[:target]] = value
        for i in order[target:]:
            if forced[i] == value:  # move it to any other value
                forced[i] = (value + rng.integers(1, len(values))) % len(values)
        shapes = [SHAPES[i] for i in shape_idx]
        colors = [COLOR_NAMES[i] for i in color_idx]
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


__all__ = ['DISTANCE_RANGE', 'GRID', 'MAX_OBJECTS', 'MIN_DEPTH_GAP', 'MIN_OBJECTS',
           'RADIUS_RANGE', 'Scene', 'ShapeObject', 'is_valid_layout', 'sample_scene',
           'sounding_candidates']
