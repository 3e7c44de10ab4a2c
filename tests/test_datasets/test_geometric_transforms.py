"""Resize, flip, crop and pad keep image, depth, boxes, masks and seg map aligned.

Each object of a synthetic sample is drawn into every modality (its own
image channel, its own depth, its mask, its seg class); after a transform the
pixels of each object must still be framed exactly by its box, in each of them.
"""
import numpy as np
import pytest
import torch
from mmcv.transforms import Compose

from mmfusion.datasets.transforms import (
    MultiModalPad,
    MultiModalRandomCrop,
    MultiModalRandomFlip,
    MultiModalResize,
    PackMultiModalInputs,
)
from mmfusion.errors import ConfigError
from mmfusion.registry import TRANSFORMS

H, W = 32, 40
BACKGROUND_DEPTH = 10.0
# (x1, y1, x2, y2) in pixel edges: the object covers columns x1..x2-1, rows y1..y2-1
BOXES = np.array([[8, 6, 20, 14], [28, 18, 36, 30], [2, 22, 8, 30]], dtype=np.float32)
DEPTHS = (2.0, 7.0, 4.0)


def make_results() -> dict:
    img = np.zeros((H, W, 3), np.uint8)
    depth = np.full((H, W, 1), BACKGROUND_DEPTH, np.float32)
    masks = np.zeros((len(BOXES), H, W), np.uint8)
    seg = np.zeros((H, W), np.uint8)
    for i, (x1, y1, x2, y2) in enumerate(BOXES.astype(int)):
        window = (slice(y1, y2), slice(x1, x2))
        img[window + (i, )] = 200  # object i lives in channel i only
        depth[window] = DEPTHS[i]
        masks[(i, ) + window] = 1
        seg[window] = i + 1
    return dict(img=img, depth=depth, gt_masks=masks, gt_seg_map=seg,
                gt_bboxes=BOXES.copy(), gt_bboxes_labels=np.arange(len(BOXES), dtype=np.int64),
                gt_ignore_flags=np.zeros(len(BOXES), bool), img_shape=(H, W), ori_shape=(H, W))


def frame(region: np.ndarray) -> list:
    """[x1, y1, x2, y2] pixel edges of the True pixels of a 2-D array."""
    ys, xs = np.nonzero(region)
    assert len(xs), 'the object vanished'
    return [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


def assert_aligned(results: dict) -> None:
    """Every kept object's pixels in image, depth, mask and seg map fill its box."""
    img, depth, seg = results['img'], results['depth'][..., 0], results['gt_seg_map']
    height, width = img.shape[:2]
    assert depth.shape == (height, width) and seg.shape == (height, width)
    assert results['gt_masks'].shape == (len(results['gt_bboxes']), height, width)
    assert tuple(results['img_shape']) == (height, width)
    for box, obj, mask in zip(results['gt_bboxes'], results['gt_bboxes_labels'],
                              results['gt_masks']):
        expected = [int(round(v)) for v in box]
        np.testing.assert_allclose(box, expected, atol=1e-4)  # edges stay on pixel edges
        assert frame(img[..., obj] > 100) == expected
        assert frame(np.isclose(depth, DEPTHS[obj])) == expected
        assert frame(mask > 0) == expected
        assert frame(seg == obj + 1) == expected


def test_the_check_itself_sees_a_misaligned_depth_map():
    results = make_results()
    assert_aligned(results)
    results['depth'] = np.roll(results['depth'], 1, axis=1)
    with pytest.raises(AssertionError):
        assert_aligned(results)


def test_resize_doubles_every_modality_with_nearest_depth():
    results = MultiModalResize(scale_factor=2.0)(make_results())  # bilinear image
    assert results['img'].shape == (2 * H, 2 * W, 3)
    assert results['depth'].shape == (2 * H, 2 * W, 1) and results['depth'].dtype == np.float32
    np.testing.assert_array_equal(results['gt_bboxes'], BOXES * 2)
    assert results['scale_factor'] == (2.0, 2.0)
    assert_aligned(results)
    # nearest interpolation: no depth between an object's and the background's
    assert set(np.unique(results['depth'])) == {BACKGROUND_DEPTH, *DEPTHS}


def test_resize_to_a_fixed_scale_with_nearest_image():
    results = MultiModalResize(scale=(60, 48), interpolation='nearest')(make_results())
    assert results['img'].shape[:2] == (48, 60)
    np.testing.assert_allclose(results['gt_bboxes'], BOXES * 1.5)
    assert_aligned(results)


def test_resize_keeps_bool_masks_bool_and_handles_no_objects():
    results = make_results()
    results['gt_masks'] = results['gt_masks'].astype(bool)
    assert MultiModalResize(scale_factor=2.0)(results)['gt_masks'].dtype == bool
    empty = dict(img=np.zeros((4, 6, 3), np.uint8), gt_masks=np.zeros((0, 4, 6), np.uint8))
    assert MultiModalResize(scale=(12, 8))(empty)['gt_masks'].shape == (0, 8, 12)


@pytest.mark.parametrize('direction', ['horizontal', 'vertical', 'diagonal'])
def test_flip_moves_boxes_and_every_map_together(direction):
    results = MultiModalRandomFlip(prob=1.0, direction=direction)(make_results())
    assert results['flip'] and results['flip_direction'] == direction
    x1, y1, x2, y2 = BOXES.T
    if direction in ('horizontal', 'diagonal'):
        x1, x2 = W - x2, W - x1
    if direction in ('vertical', 'diagonal'):
        y1, y2 = H - y2, H - y1
    np.testing.assert_array_equal(results['gt_bboxes'], np.stack([x1, y1, x2, y2], axis=1))
    assert_aligned(results)


def test_no_flip_leaves_everything():
    results = MultiModalRandomFlip(prob=0.0)(make_results())
    assert not results['flip']
    np.testing.assert_array_equal(results['depth'], make_results()['depth'])
    assert_aligned(results)


@pytest.mark.parametrize('seed', range(6))
def test_random_crop_keeps_the_visible_objects_aligned(seed):
    np.random.seed(seed)
    results = MultiModalRandomCrop(crop_size=(24, 20), allow_negative_crop=True)(make_results())
    assert results['img'].shape[:2] == (20, 24)
    x0, y0 = results['crop_offset']
    # a box survives iff some of its area is inside the window, clipped to it
    clipped = BOXES - [x0, y0, x0, y0]
    clipped[:, 0::2] = clipped[:, 0::2].clip(0, 24)
    clipped[:, 1::2] = clipped[:, 1::2].clip(0, 20)
    visible = (clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1])
    np.testing.assert_array_equal(results['gt_bboxes_labels'], np.nonzero(visible)[0])
    np.testing.assert_array_equal(results['gt_bboxes'], clipped[visible])
    assert len(results['gt_ignore_flags']) == visible.sum()
    if visible.any():
        assert_aligned(results)


def test_crop_that_drops_every_box_returns_none_unless_allowed():
    crop = dict(type='MultiModalRandomCrop', crop_size=(6, 5))
    results = make_results()
    # pin the window to the top-right corner (x 34..40, y 0..5), where no object is
    transform = TRANSFORMS.build(crop)
    transform._window_offset = lambda margin_h, margin_w: (0, margin_w)
    assert transform(make_results()) is None
    transform = TRANSFORMS.build(dict(crop, allow_negative_crop=True))
    transform._window_offset = lambda margin_h, margin_w: (0, margin_w)
    kept = transform(results)
    assert kept['gt_bboxes'].shape == (0, 4) and kept['gt_masks'].shape == (0, 5, 6)
    # a sample without boxes is never dropped
    no_boxes = dict(img=np.zeros((8, 8, 3), np.uint8), gt_bboxes=np.zeros((0, 4), np.float32))
    assert MultiModalRandomCrop(crop_size=(4, 4))(no_boxes) is not None


def test_relative_crop_size_and_crop_bigger_than_the_image():
    results = MultiModalRandomCrop(crop_size=(0.5, 0.5), crop_type='relative',
                                   allow_negative_crop=True)(make_results())
    assert results['img'].shape[:2] == (H // 2, W // 2)
    results = MultiModalRandomCrop(crop_size=(100, 100))(make_results())
    assert results['img'].shape[:2] == (H, W)
    assert_aligned(results)


def test_pad_to_a_size_and_to_a_divisor():
    results = MultiModalPad(size=(48, 36), pad_val=dict(img=0, seg=255, depth=0))(make_results())
    assert results['img'].shape == (36, 48, 3) and results['depth'].shape == (36, 48, 1)
    np.testing.assert_array_equal(results['gt_bboxes'], BOXES)  # bottom/right padding
    assert (results['depth'][H:] == 0).all() and (results['depth'][:, W:] == 0).all()
    assert (results['gt_seg_map'][H:] == 255).all()
    assert (results['gt_masks'][:, H:] == 0).all()
    assert_aligned(results)
    results = MultiModalPad(size_divisor=16)(make_results())
    assert results['img'].shape[:2] == (32, 48) and results['gt_masks'].shape[1:] == (32, 48)
    assert results['depth'][0, W, 0] == 0  # default pad value of an extra key
    assert_aligned(results)


@pytest.mark.parametrize('seed', range(4))
def test_pipeline_from_config_names_then_pack(seed):
    np.random.seed(seed)
    pipeline = Compose([TRANSFORMS.build(cfg) for cfg in [
        dict(type='MultiModalResize', scale_factor=2.0, interpolation='nearest'),
        dict(type='MultiModalRandomFlip', prob=0.5, direction=['horizontal', 'vertical']),
        dict(type='MultiModalRandomCrop', crop_size=(64, 48)),
        dict(type='MultiModalPad', size_divisor=32),
    ]])
    results = pipeline(make_results())
    assert results is not None and results['img'].shape[:2] == (64, 64)
    assert_aligned(results)
    packed = PackMultiModalInputs()(results)
    sample = packed['data_samples']
    assert packed['inputs']['depth'].shape == (1, 64, 64)
    assert packed['inputs']['depth'].dtype == torch.float32
    n = len(results['gt_bboxes'])
    assert sample.gt_instances.masks.shape == (n, 64, 64)
    assert sample.gt_instances.masks.dtype == torch.bool
    torch.testing.assert_close(sample.gt_instances.bboxes, torch.from_numpy(results['gt_bboxes']))
    assert sample.gt_sem_seg.data.shape == (1, 64, 64)
    assert sample.gt_sem_seg.data.dtype == torch.long


def test_extra_keys_are_configurable():
    results = make_results()
    results['thermal'] = results.pop('depth')[..., 0]  # (H, W) without a channel axis
    out = MultiModalRandomFlip(prob=1.0, image_keys=['thermal'])(results)
    np.testing.assert_array_equal(out['thermal'], make_results()['depth'][:, ::-1, 0])
    out = MultiModalResize(scale_factor=2.0, image_keys=['thermal'])(out)
    assert out['thermal'].shape == (2 * H, 2 * W)


@pytest.mark.parametrize('build, match', [
    (lambda: MultiModalResize(scale_factor=2.0, image_keys=['img']), "must not name 'img'"),
    (lambda: MultiModalPad(size_divisor=4, image_keys='depth'), 'list of results keys'),
    (lambda: MultiModalRandomCrop(crop_size=(0, 4)), 'two positive ints'),
    (lambda: MultiModalRandomCrop(crop_size=(1.5, 0.5), crop_type='relative'), r'\(0, 1\]'),
    (lambda: MultiModalRandomCrop(crop_size=(4, 4), crop_type='centre'), 'crop_type'),
])
def test_bad_arguments_are_config_errors(build, match):
    with pytest.raises(ConfigError, match=match):
        build()
