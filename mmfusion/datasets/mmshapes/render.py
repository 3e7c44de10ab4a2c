"""Rendering a scene into aligned RGB, depth, semantic and instance maps."""
from typing import Tuple

import numpy as np

from .scenes import Scene, ShapeObject
from .spec import COLORS, SHAPES

BACKGROUND_GRAY: int = 210
BACKGROUND_DEPTH_MM: int = 10000


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


__all__ = ['BACKGROUND_DEPTH_MM', 'BACKGROUND_GRAY', 'render_scene', 'shape_mask']
