"""Geometric transforms that move every aligned modality and annotation together.

mmcv's ``Resize``, ``RandomFlip`` and ``Pad`` change ``img``, ``gt_bboxes`` and
``gt_seg_map`` only; a depth map (or a thermal image) left untouched would no
longer line up with the picture, and mmcv has no instance masks (``gt_masks``)
nor a random crop. The transforms here subclass mmcv's (same arguments, same
results keys) and apply the same change to:

* every key of ``image_keys`` present in the results (default ``depth`` and
  ``thermal``: (H, W) or (H, W, C) arrays), resized with ``nearest``
  interpolation by default, because blending an object's depth with the
  background's at its border invents distances that exist nowhere;
* ``gt_masks`` (uint8/bool (N, H, W)), resized with ``nearest``;
* ``gt_bboxes`` and ``gt_seg_map`` as mmcv does.

Why not ``mmcv.transforms.TransformBroadcaster``: it runs the wrapped
transform once per key, so boxes would be moved once per modality unless
each key is remapped by hand, every key gets the image's interpolation
(bilinear depth), and masks would still be left out.
"""
from typing import Optional, Sequence, Tuple, Union

import mmcv
import numpy as np
from mmcv.transforms import BaseTransform
from mmcv.transforms import Pad as MMCVPad
from mmcv.transforms import RandomFlip as MMCVRandomFlip
from mmcv.transforms import Resize as MMCVResize
from mmcv.transforms.utils import cache_randomness

from mmfusion.errors import ConfigError
from mmfusion.registry import TRANSFORMS

DEFAULT_IMAGE_KEYS: Tuple[str, ...] = ('depth', 'thermal')


def _check_image_keys(owner: str, image_keys: Sequence[str]) -> Tuple[str, ...]:
    if isinstance(image_keys, str) or not all(isinstance(k, str) and k for k in image_keys):
        raise ConfigError(f'{owner}: image_keys must be a list of results keys such as '
                          f"['depth'], got {image_keys!r}")
    if 'img' in image_keys:
        raise ConfigError(f"{owner}: image_keys must not name 'img' (it is always transformed); "
                          f'got {list(image_keys)}')
    return tuple(image_keys)


def _restore_channels(out: np.ndarray, like: np.ndarray) -> np.ndarray:
    """OpenCV drops a trailing channel axis of size 1; put it back."""
    if like.ndim == 3 and out.ndim == 2:
        out = out[..., None]
    return out


def resize_map(array: np.ndarray, size_wh: Tuple[int, int],
               interpolation: str = 'nearest') -> np.ndarray:
    """Resize an (H, W) or (H, W, C) array to ``size_wh`` = (width, height)."""
    out = mmcv.imresize(array, size_wh, interpolation=interpolation)
    return _restore_channels(out, array)


def resize_masks(masks: np.ndarray, size_wh: Tuple[int, int]) -> np.ndarray:
    """Resize (N, H, W) masks to (N, height, width) with nearest interpolation."""
    width, height = size_wh
    if len(masks) == 0:
        return np.zeros((0, height, width), dtype=masks.dtype)
    # bool is not an OpenCV type: resize as uint8, keep the caller's dtype
    return np.stack([mmcv.imresize(m.astype(np.uint8), size_wh, interpolation='nearest')
                     for m in masks]).astype(masks.dtype)


def _present(results: dict, keys: Sequence[str]):
    return [k for k in keys if results.get(k) is not None]


@TRANSFORMS.register_module()
class MultiModalResize(MMCVResize):
    """mmcv's ``Resize`` applied to the image, the aligned maps and the masks.

    Args:
        image_keys: results keys of aligned image-like modalities, resized to
            the new image size (keys absent from the results are skipped).
        extra_interpolation: interpolation for those maps (``'nearest'``
            keeps every depth value a real one).
        **kwargs: mmcv ``Resize`` arguments (``scale`` (w, h),
            ``scale_factor``, ``keep_ratio``, ``clip_object_border``,
            ``interpolation`` of the image, ``backend``).

    ``img`` (H, W, 3) -> (h, w, 3); each image key (H, W[, C]) -> (h, w[, C]);
    ``gt_masks`` (N, H, W) -> (N, h, w); ``gt_bboxes`` scaled (and clipped);
    ``gt_seg_map`` resized with nearest; ``img_shape``, ``scale_factor``
    (w_scale, h_scale) updated.
    """

    def __init__(self, *args, image_keys: Sequence[str] = DEFAULT_IMAGE_KEYS,
                 extra_interpolation: str = 'nearest', **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.image_keys = _check_image_keys(type(self).__name__, image_keys)
        self.extra_interpolation = extra_interpolation

    def _resize_img(self, results: dict) -> None:
        """mmcv's, but an image already at the target size is kept as it is
        (``cv2.resize`` would copy it; 224 px JPEGs for a 224 px model)."""
        img = results.get('img')
        if img is not None and not self.keep_ratio and \
                tuple(img.shape[:2]) == (results['scale'][1], results['scale'][0]):
            results['img_shape'] = img.shape[:2]
            results['scale_factor'] = (1.0, 1.0)
            results['keep_ratio'] = self.keep_ratio
            return
        super()._resize_img(results)

    def transform(self, results: dict) -> dict:
        results = super().transform(results)
        height, width = results['img'].shape[:2]
        for key in _present(results, self.image_keys):
            results[key] = resize_map(results[key], (width, height), self.extra_interpolation)
        if results.get('gt_masks') is not None:
            results['gt_masks'] = resize_masks(results['gt_masks'], (width, height))
        return results

    def __repr__(self) -> str:
        return (f'{super().__repr__()}, image_keys={self.image_keys}, '
                f'extra_interpolation={self.extra_interpolation!r}')


_MASK_FLIP_AXES = dict(horizontal=(2, ), vertical=(1, ), diagonal=(1, 2))


@TRANSFORMS.register_module()
class MultiModalRandomFlip(MMCVRandomFlip):
    """mmcv's ``RandomFlip`` applied to the image, the aligned maps and the masks.

    Args:
        image_keys: results keys of aligned image-like modalities to flip
            with the image.
        **kwargs: mmcv ``RandomFlip`` arguments (``prob``, ``direction``,
            ``swap_seg_labels``).

    One random draw decides for all keys; shapes are unchanged. Sets ``flip``
    and ``flip_direction`` like mmcv.
    """

    def __init__(self, *args, image_keys: Sequence[str] = DEFAULT_IMAGE_KEYS,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.image_keys = _check_image_keys(type(self).__name__, image_keys)

    def _flip(self, results: dict) -> None:
        super()._flip(results)
        direction = results['flip_direction']
        for key in _present(results, self.image_keys):
            results[key] = mmcv.imflip(results[key], direction=direction)
        if results.get('gt_masks') is not None:
            results['gt_masks'] = np.flip(results['gt_masks'],
                                          axis=_MASK_FLIP_AXES[direction]).copy()

    def __repr__(self) -> str:
        return f'{super().__repr__()[:-1]}, image_keys={self.image_keys})'


@TRANSFORMS.register_module()
class MultiModalPad(MMCVPad):
    """mmcv's ``Pad`` applied to the image, the aligned maps and the masks.

    Padding goes to the bottom and right, so boxes do not move.

    Args:
        image_keys: results keys of aligned image-like modalities, padded to
            the image's padded size with ``pad_val[key]`` (default 0) and the
            same ``padding_mode`` as the image.
        **kwargs: mmcv ``Pad`` arguments (``size`` (w, h), ``size_divisor``,
            ``pad_to_square``, ``pad_val`` (e.g. ``dict(img=0, seg=255,
            depth=0)``), ``padding_mode``).

    ``gt_masks`` are always padded with 0 (an object never extends into the
    padding, whatever the image's ``padding_mode``). Sets ``pad_shape``,
    ``img_shape`` like mmcv.
    """

    def __init__(self, *args, image_keys: Sequence[str] = DEFAULT_IMAGE_KEYS,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.image_keys = _check_image_keys(type(self).__name__, image_keys)

    def transform(self, results: dict) -> dict:
        results = super().transform(results)
        height, width = results['pad_shape'][:2]
        for key in _present(results, self.image_keys):
            array = results[key]
            padded = mmcv.impad(array, shape=(height, width), pad_val=self.pad_val.get(key, 0),
                                padding_mode=self.padding_mode)
            results[key] = _restore_channels(padded, array)
        if results.get('gt_masks') is not None:
            masks = results['gt_masks']
            results['gt_masks'] = np.pad(masks, ((0, 0), (0, height - masks.shape[1]),
                                                 (0, width - masks.shape[2])))
        return results

    def __repr__(self) -> str:
        return f'{super().__repr__()[:-1]}, image_keys={self.image_keys})'


@TRANSFORMS.register_module()
class MultiModalRandomCrop(BaseTransform):
    """Crop a random window of the image, the aligned maps and the annotations.

    mmcv has no random crop (mmdet's ``RandomCrop`` needs mmdet's box and mask
    structures); this one follows mmdet's semantics on plain arrays.

    Args:
        crop_size: (width, height) of the window: pixels with
            ``crop_type='absolute'`` (clipped to the image), fractions of the
            image size in (0, 1] with ``'relative'``.
        crop_type: ``'absolute'`` or ``'relative'``.
        allow_negative_crop: keep a crop that leaves none of the sample's
            boxes; otherwise return None and the dataset draws another sample
            (in training). A sample that had no boxes is always kept.
        clip_object_border: clip the kept boxes to the window.
        image_keys: results keys of aligned image-like modalities.

    ``img``, each image key, ``gt_seg_map`` and ``gt_masks`` are cut to the
    window; ``gt_bboxes`` move by its offset, and boxes left with no area
    inside it are dropped together with their ``gt_bboxes_labels``,
    ``gt_ignore_flags`` and ``gt_masks``. Sets ``img_shape`` and
    ``crop_offset`` (x, y).
    """

    def __init__(self, crop_size: Union[Tuple[int, int], Tuple[float, float]],
                 crop_type: str = 'absolute', allow_negative_crop: bool = False,
                 clip_object_border: bool = True,
                 image_keys: Sequence[str] = DEFAULT_IMAGE_KEYS) -> None:
        name = type(self).__name__
        if crop_type not in ('absolute', 'relative'):
            raise ConfigError(f"{name}: crop_type must be 'absolute' or 'relative', "
                              f'got {crop_type!r}')
        if not (isinstance(crop_size, (tuple, list)) and len(crop_size) == 2):
            raise ConfigError(f'{name}: crop_size must be (width, height), got {crop_size!r}')
        if crop_type == 'absolute' and not all(
                isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in crop_size):
            raise ConfigError(f"{name}: with crop_type='absolute' crop_size must be two "
                              f'positive ints (width, height), got {crop_size!r}')
        if crop_type == 'relative' and not all(
                isinstance(v, (int, float)) and 0 < v <= 1 for v in crop_size):
            raise ConfigError(f"{name}: with crop_type='relative' crop_size must be two "
                              f'fractions in (0, 1] (width, height), got {crop_size!r}')
        self.crop_size = tuple(crop_size)
        self.crop_type = crop_type
        self.allow_negative_crop = allow_negative_crop
        self.clip_object_border = clip_object_border
        self.image_keys = _check_image_keys(name, image_keys)

    def _window_size(self, height: int, width: int) -> Tuple[int, int]:
        """(crop_height, crop_width) for an image of that size."""
        crop_w, crop_h = self.crop_size
        if self.crop_type == 'relative':
            return max(1, int(height * crop_h + 0.5)), max(1, int(width * crop_w + 0.5))
        return min(crop_h, height), min(crop_w, width)

    @cache_randomness
    def _window_offset(self, margin_h: int, margin_w: int) -> Tuple[int, int]:
        """(y, x) of the window's top-left corner."""
        return int(np.random.randint(0, margin_h + 1)), int(np.random.randint(0, margin_w + 1))

    def _crop_boxes(self, results: dict, x0: int, y0: int, crop_h: int,
                    crop_w: int) -> Optional[np.ndarray]:
        """Move the boxes into the window; the indices of those kept (None: no boxes)."""
        if results.get('gt_bboxes') is None:
            return None
        boxes = np.asarray(results['gt_bboxes'], dtype=np.float32).reshape(-1, 4)
        boxes = boxes - np.array([x0, y0, x0, y0], dtype=np.float32)
        clipped = boxes.copy()
        clipped[:, 0::2] = np.clip(clipped[:, 0::2], 0, crop_w)
        clipped[:, 1::2] = np.clip(clipped[:, 1::2], 0, crop_h)
        keep = np.nonzero((clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1]))[0]
        results['gt_bboxes'] = (clipped if self.clip_object_border else boxes)[keep]
        for key in ('gt_bboxes_labels', 'gt_ignore_flags', 'gt_masks'):
            if results.get(key) is not None:
                results[key] = results[key][keep]
        return keep if len(boxes) else None

    def transform(self, results: dict) -> Optional[dict]:
        height, width = results['img'].shape[:2]
        crop_h, crop_w = self._window_size(height, width)
        y0, x0 = self._window_offset(height - crop_h, width - crop_w)
        window = (slice(y0, y0 + crop_h), slice(x0, x0 + crop_w))
        for key in ['img', 'gt_seg_map'] + _present(results, self.image_keys):
            if results.get(key) is not None:
                results[key] = np.ascontiguousarray(results[key][window])
        if results.get('gt_masks') is not None:
            results['gt_masks'] = np.ascontiguousarray(results['gt_masks'][(slice(None), ) +
                                                                           window])
        keep = self._crop_boxes(results, x0, y0, crop_h, crop_w)
        if keep is not None and len(keep) == 0 and not self.allow_negative_crop:
            return None
        results['img_shape'] = (crop_h, crop_w)
        results['crop_offset'] = (x0, y0)
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(crop_size={self.crop_size}, '
                f'crop_type={self.crop_type!r}, allow_negative_crop={self.allow_negative_crop}, '
                f'clip_object_border={self.clip_object_border}, image_keys={self.image_keys})')


__all__ = ['DEFAULT_IMAGE_KEYS', 'MultiModalPad', 'MultiModalRandomCrop', 'MultiModalRandomFlip',
           'MultiModalResize', 'resize_map', 'resize_masks']
