"""MultiModalResize keeps an image that already has the target size (no copy),
and LoadImageFromFile hands out a fresh decode without copying it."""
import numpy as np
import pytest

from mmfusion.datasets.transforms import MultiModalResize
from mmfusion.registry import TRANSFORMS


def test_resize_keeps_an_image_already_at_the_target_size():
    img = np.random.default_rng(0).integers(0, 255, (6, 8, 3), dtype=np.uint8)
    out = MultiModalResize(scale=(8, 6), keep_ratio=False)(dict(img=img))
    assert out['img'] is img  # not copied by cv2.resize
    assert out['img_shape'] == (6, 8) and out['scale_factor'] == (1.0, 1.0)
    resized = MultiModalResize(scale=(4, 3), keep_ratio=False)(dict(img=img.copy()))
    assert resized['img'].shape == (3, 4, 3) and resized['scale_factor'] == (0.5, 0.5)


@pytest.mark.parametrize('cache_size', [0, 2])
def test_load_image_copies_only_what_it_caches(tmp_path, cache_size):
    import cv2
    path = str(tmp_path / 'a.png')
    cv2.imwrite(path, np.full((4, 5, 3), 7, np.uint8))
    load = TRANSFORMS.build(dict(type='LoadImageFromFile', cache_size=cache_size))
    first = load(dict(img_path=path))['img']
    first[:] = 0  # a later transform writing in place
    again = load(dict(img_path=path))['img']
    assert (again == 7).all()  # the cache (if any) was not modified
