"""Image loading: mmcv's loader plus clear errors and an optional decoded-image cache;
depth maps and dense annotations (boxes, masks, segmentation maps)."""
import math
from collections import OrderedDict
from typing import Any, List, Optional, Tuple

import mmcv
import numpy as np
from mmcv.transforms import LoadAnnotations as MMCVLoadAnnotations
from mmcv.transforms import LoadImageFromFile as MMCVLoadImageFromFile
from mmengine import fileio

from mmfusion.errors import (
    AnnotationError,
    ConfigError,
    DataError,
    ImageFileNotFoundError,
    ImageLoadError,
)
from mmfusion.registry import TRANSFORMS

from .modality import is_missing


@TRANSFORMS.register_module()
class LoadImageFromFile(MMCVLoadImageFromFile):
    """mmcv's ``LoadImageFromFile`` with clear errors and a decoded-image cache.

    Registered in mmfusion's registry under mmcv's name, so configs keep
    writing ``dict(type='LoadImageFromFile')`` (mmcv's own stays available as
    ``'mmcv.LoadImageFromFile'``). Same arguments as mmcv's, plus:

    Args:
        cache_size: how many decoded images to keep in memory (least recently
            used dropped first); 0 disables the cache. For small datasets on
            few cores, where decoding is a large share of the data pipeline
            (MMShapes: 2000 64x64 images, 24 MB). Each data-loader worker
            holds its own cache, so it pays off with ``num_workers=0`` or
            ``persistent_workers=True``.

    Adds ``img`` (H, W, 3) uint8 BGR (or float32 with ``to_float32``),
    ``img_shape`` and ``ori_shape``; does nothing for a sample whose
    ``missing_modalities`` names ``'image'``. Raises :class:`ImageFileNotFoundError`
    (also a ``FileNotFoundError``) for a missing file and
    :class:`ImageLoadError` for one that cannot be read (a folder, no
    permission) or does not decode as an image; both name the file.
    """

    def __init__(self, *args, cache_size: int = 0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if cache_size < 0:
            raise ValueError(f'LoadImageFromFile: cache_size must be >= 0, got {cache_size}')
        self.cache_size = int(cache_size)
        self._cache: 'OrderedDict[str, np.ndarray]' = OrderedDict()

    def _decode(self, filename: str) -> np.ndarray:
        try:
            img_bytes = fileio.get(filename, backend_args=self.backend_args)
        except FileNotFoundError:
            raise ImageFileNotFoundError(f'image file not found: {filename}') from None
        except (OSError, ValueError) as e:  # a folder, no permission, a NUL in the path
            raise ImageLoadError(f'cannot read image file {filename} ({e})') from e
        if not img_bytes:
            raise ImageLoadError(f'image file is empty: {filename}')
        try:
            img = mmcv.imfrombytes(img_bytes, flag=self.color_type,
                                   backend=self.imdecode_backend)
        except Exception as e:  # each decoding backend raises its own types
            raise ImageLoadError(f'cannot decode {filename} as an image ({e})') from e
        if img is None:  # OpenCV returns None for truncated or non-image data
            raise ImageLoadError(f'cannot decode {filename} as an image (truncated or not '
                                 f'an image; {len(img_bytes)} bytes)')
        return img

    def transform(self, results: dict) -> Optional[dict]:
        if is_missing(results, 'image'):
            return results  # a sample without its image (see transforms.modality)
        filename = results['img_path']
        img = self._cache.get(filename) if self.cache_size else None
        if img is None:
            try:
                img = self._decode(filename)
            except ImageLoadError:
                if self.ignore_empty:
                    return None
                raise
            if self.cache_size:
                self._cache[filename] = img
                if len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(filename)
        # later transforms may modify the array in place: the cache keeps its own
        # (a freshly decoded array that is not cached needs no copy)
        if self.to_float32:
            img = img.astype(np.float32)
        elif self.cache_size:
            img = img.copy()
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results

    def __repr__(self) -> str:
        return f'{super().__repr__()[:-1]}, cache_size={self.cache_size})'


@TRANSFORMS.register_module()
class LoadDepthFromFile(LoadImageFromFile):
    """Load a single-channel depth map (or any aligned one-channel image) as metres.

    Reads ``results[key + '_path']`` (e.g. ``depth_path``, which the datasets
    fill from their ``extra_modalities``), decodes it unchanged (a uint16 PNG
    keeps its 16 bits) and multiplies it by ``scale``. The same loader serves
    other aligned one-channel modalities: ``key='thermal'`` reads
    ``thermal_path`` into ``results['thermal']``.

    Args:
        key: results key to write; the path is read from ``key + '_path'``.
        scale: factor from the stored integers to the wanted unit; the
            default 0.001 turns millimetres (the usual uint16 depth PNG, e.g.
            MMShapes, NYU-v2 exports) into metres.
        check_size: raise :class:`~mmfusion.errors.DataError` when an image is
            already loaded (``results['img']``) and the map has another size:
            aligned modalities must share the pixel grid.
        cache_size, imdecode_backend, ignore_empty, backend_args: as in
            :class:`LoadImageFromFile`.

    Adds ``results[key]``: float32 array (H, W, 1). Missing and unreadable
    files raise :class:`ImageFileNotFoundError` / :class:`ImageLoadError`
    naming the modality and the file (or return None with
    ``ignore_empty``); a multi-channel file raises :class:`ImageLoadError`.
    """

    def __init__(self, key: str = 'depth', scale: float = 0.001, check_size: bool = True,
                 cache_size: int = 0, imdecode_backend: str = 'cv2', ignore_empty: bool = False,
                 backend_args: Optional[dict] = None) -> None:
        if not (isinstance(key, str) and key):
            raise ConfigError(f'LoadDepthFromFile: key must be a non-empty string, got {key!r}')
        if (isinstance(scale, bool) or not isinstance(scale, (int, float))
                or not math.isfinite(scale) or scale <= 0):
            raise ConfigError(f'LoadDepthFromFile: scale must be a positive number (e.g. 0.001 '
                              f'for millimetres -> metres), got {scale!r}')
        super().__init__(color_type='unchanged', imdecode_backend=imdecode_backend,
                         ignore_empty=ignore_empty, backend_args=backend_args,
                         cache_size=cache_size)
        self.key = key
        self.scale = float(scale)
        self.check_size = check_size

    def _decode_cached(self, filename: str) -> np.ndarray:
        """The decoded file, from the cache when it is there (never modify it)."""
        raw = self._cache.get(filename) if self.cache_size else None
        if raw is None:
            raw = self._decode(filename)
            if self.cache_size:
                self._cache[filename] = raw
                if len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(filename)
        return raw

    def transform(self, results: dict) -> Optional[dict]:
        path_key = f'{self.key}_path'
        if is_missing(results, self.key):
            return results  # a sample without this modality (see transforms.modality)
        if path_key not in results:
            found = sorted(k for k in results if k.endswith('_path'))
            raise ConfigError(f'LoadDepthFromFile: the sample has no "{path_key}" (found '
                              f'{found}); give the dataset extra_modalities='
                              f"dict({self.key}=...) or set key= to one of those")
        filename = results[path_key]
        try:
            raw = self._decode_cached(filename)
        except ImageLoadError as e:
            if self.ignore_empty:
                return None
            raise type(e)(f'{self.key}: {e}') from e
        if raw.ndim == 3 and raw.shape[2] != 1:
            raise ImageLoadError(f'{self.key} file {filename} has {raw.shape[2]} channels; '
                                 f'expected a single-channel image (e.g. a uint16 PNG of '
                                 f'millimetres)')
        if self.check_size and results.get('img') is not None:
            img_hw = tuple(results['img'].shape[:2])
            if tuple(raw.shape[:2]) != img_hw:
                raise DataError(f'{self.key} file {filename} is {raw.shape[0]}x{raw.shape[1]} '
                                f'(HxW) but the image {results.get("img_path", "")} is '
                                f'{img_hw[0]}x{img_hw[1]}; aligned modalities must have the '
                                f'same size (load {self.key} before any resize)')
        # astype copies, so the cached array is never handed out
        results[self.key] = raw.reshape(raw.shape[:2] + (1, )).astype(np.float32) * self.scale
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(key={self.key!r}, scale={self.scale}, '
                f'check_size={self.check_size}, cache_size={self.cache_size})')


def decode_coco_mask(segmentation: Any, height: int, width: int) -> np.ndarray:
    """A COCO ``segmentation`` (polygons, or RLE with list or string counts)
    -> uint8 mask (height, width).

    Raises :class:`ValueError` for a value of another form or an RLE whose
    ``size`` is not (height, width).
    """
    from pycocotools import mask as mask_utils
    if isinstance(segmentation, list):  # polygons [[x1, y1, x2, y2, ...], ...]
        if not segmentation:
            return np.zeros((height, width), np.uint8)
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    elif isinstance(segmentation, dict) and 'counts' in segmentation and 'size' in segmentation:
        size = [int(v) for v in segmentation['size']]
        if size != [height, width]:
            raise ValueError(f'the RLE size {size} is not the image size [{height}, {width}]')
        rle = (mask_utils.frPyObjects(segmentation, height, width)
               if isinstance(segmentation['counts'], list) else segmentation)
    else:
        raise ValueError(f'expected polygons (a list of [x1, y1, x2, y2, ...] lists) or an '
                         f'RLE dict with "counts" and "size", got {type(segmentation).__name__}')
    return np.ascontiguousarray(mask_utils.decode(rle), dtype=np.uint8)


@TRANSFORMS.register_module()
class LoadAnnotations(MMCVLoadAnnotations):
    """mmcv's ``LoadAnnotations`` plus instance masks, ignore flags, per-sample
    label maps and clear errors.

    Registered under mmcv's name in mmfusion's registry (mmcv's stays
    available as ``'mmcv.LoadAnnotations'``). Reads the ``instances`` and
    ``seg_map_path`` that mmfusion's dense datasets write:

    * ``instances``: list of dicts with ``bbox`` (xyxy), ``bbox_label``,
      optional ``ignore_flag`` (crowd), ``mask`` (COCO polygons or RLE) and
      ``seg_label``;
    * ``seg_map_path``: a PNG of class indices, optionally with a per-sample
      ``label_map`` dict ``{value in the file: class index}`` (how an instance-id
      PNG becomes a semantic or a referring map without writing new files).
      Without ``seg_map_path`` the map is painted from the instances' masks
      (``seg_label`` each, in order, later ones on top; the rest 0).

    Args:
        with_bbox: add ``gt_bboxes`` float32 (N, 4) and ``gt_ignore_flags``
            bool (N,).
        with_label: add ``gt_bboxes_labels`` int64 (N,).
        with_mask: add ``gt_masks`` uint8 (N, H, W), decoded at the loaded
            image's size (``ori_shape``, else the sample's height/width).
        with_seg: add ``gt_seg_map`` (H, W) uint8 (int64 when a label exceeds 255).
        with_keypoints, imdecode_backend, backend_args: as in mmcv (use
            ``imdecode_backend='pillow'`` for palette PNGs: OpenCV turns
            their indices into colours).

    Raises :class:`ConfigError` when the sample lacks what a flag asks for
    (e.g. ``with_bbox`` on a segmentation list), :class:`ImageFileNotFoundError`
    / :class:`ImageLoadError` for a missing or unreadable segmentation map,
    :class:`AnnotationError` for an undecodable mask and :class:`DataError`
    when a map's size differs from the image's; all name the file.
    """

    def __init__(self, with_bbox: bool = True, with_label: bool = True, with_mask: bool = False,
                 with_seg: bool = False, with_keypoints: bool = False,
                 imdecode_backend: str = 'cv2', *, backend_args: Optional[dict] = None) -> None:
        super().__init__(with_bbox=with_bbox, with_label=with_label, with_seg=with_seg,
                         with_keypoints=with_keypoints, imdecode_backend=imdecode_backend,
                         backend_args=backend_args)
        self.with_mask = with_mask

    @staticmethod
    def _instances(results: dict, flag: str) -> List[dict]:
        if 'instances' not in results:
            raise ConfigError(f'LoadAnnotations: {flag}=True but the sample has no '
                              f'"instances" (the dataset gives no objects); set {flag}=False')
        return results['instances']

    def _load_bboxes(self, results: dict) -> None:
        instances = self._instances(results, 'with_bbox')
        super()._load_bboxes(results)
        results['gt_ignore_flags'] = np.array(
            [bool(inst.get('ignore_flag', 0)) for inst in instances], dtype=bool)

    def _load_labels(self, results: dict) -> None:
        self._instances(results, 'with_label')
        super()._load_labels(results)

    @staticmethod
    def _image_size(results: dict) -> Tuple[int, int]:
        """(height, width) of the loaded image, else of the annotation record."""
        if 'ori_shape' in results:
            return tuple(int(v) for v in results['ori_shape'][:2])
        if 'height' in results and 'width' in results:
            return int(results['height']), int(results['width'])
        raise ConfigError('LoadAnnotations: decoding masks needs the image size; load the '
                          'image first (LoadImageFromFile) or give the samples height/width')

    def _decode_masks(self, results: dict, instances: List[dict]) -> List[np.ndarray]:
        height, width = self._image_size(results)
        masks = []
        for i, inst in enumerate(instances):
            where = f'{results.get("img_path", "sample")}, instance {i}'
            if 'mask' not in inst:
                raise AnnotationError(f'{where}: no "mask"; expected COCO polygons or an RLE '
                                      f'(give the dataset with_mask=True)')
            try:
                masks.append(decode_coco_mask(inst['mask'], height, width))
            except (ValueError, TypeError) as e:
                raise AnnotationError(f'{where}: cannot decode the mask ({e})') from e
        return masks

    def _load_masks(self, results: dict) -> None:
        instances = self._instances(results, 'with_mask')
        height, width = self._image_size(results)
        masks = self._decode_masks(results, instances)
        results['gt_masks'] = (np.stack(masks) if masks
                               else np.zeros((0, height, width), np.uint8))

    def _read_seg_map(self, path: str) -> np.ndarray:
        try:
            data = fileio.get(path, backend_args=self.backend_args)
        except FileNotFoundError:
            raise ImageFileNotFoundError(f'segmentation map not found: {path}') from None
        except (OSError, ValueError) as e:
            raise ImageLoadError(f'cannot read segmentation map {path} ({e})') from e
        if not data:
            raise ImageLoadError(f'segmentation map is empty: {path}')
        try:
            seg = mmcv.imfrombytes(data, flag='unchanged', backend=self.imdecode_backend)
        except Exception as e:  # each decoding backend raises its own types
            raise ImageLoadError(f'cannot decode segmentation map {path} ({e})') from e
        if seg is None:  # OpenCV returns None for truncated or non-image data
            raise ImageLoadError(f'cannot decode segmentation map {path} (empty, truncated or '
                                 f'not an image; {len(data)} bytes)')
        if seg.ndim == 3:
            raise ImageLoadError(f'segmentation map {path} has {seg.shape[2]} channels; '
                                 f'expected a single-channel PNG of class indices (for a '
                                 f"palette PNG use imdecode_backend='pillow')")
        return seg

    @staticmethod
    def _apply_label_map(seg: np.ndarray, label_map: dict) -> np.ndarray:
        """Replace each value ``old`` of ``label_map`` by ``new`` (others stay)."""
        size = max(int(seg.max(initial=0)), max(label_map)) + 1
        lut = np.arange(size, dtype=np.int64)
        for old, new in label_map.items():
            lut[int(old)] = int(new)
        return lut[seg]

    def _load_seg_map(self, results: dict) -> None:
        if 'seg_map_path' in results:
            path = results['seg_map_path']
            seg = self._read_seg_map(path)
            if results.get('label_map'):
                seg = self._apply_label_map(seg, results['label_map'])
        elif 'instances' in results:
            path = f'the masks of {results.get("img_path", "the sample")}'
            instances = results['instances']
            missing = [i for i, inst in enumerate(instances) if 'seg_label' not in inst]
            if missing:
                raise ConfigError(f'LoadAnnotations: with_seg=True but the sample has no '
                                  f'seg_map_path and instance {missing[0]} has no "seg_label" '
                                  f'(use a segmentation dataset)')
            seg = np.zeros(self._image_size(results), np.int64)
            for inst, mask in zip(instances, self._decode_masks(results, instances)):
                seg[mask.astype(bool)] = int(inst['seg_label'])
        else:
            raise ConfigError('LoadAnnotations: with_seg=True but the sample has neither '
                              '"seg_map_path" nor "instances"; set with_seg=False')
        if 'ori_shape' in results and tuple(seg.shape) != tuple(results['ori_shape'][:2]):
            raise DataError(f'segmentation map {path} is {seg.shape[0]}x{seg.shape[1]} (HxW) '
                            f'but the image {results.get("img_path", "")} is '
                            f'{results["ori_shape"][0]}x{results["ori_shape"][1]}; expected '
                            f'the same size')
        if seg.dtype != np.uint8 and seg.size and 0 <= seg.min() and seg.max() <= 255:
            seg = seg.astype(np.uint8)
        results['gt_seg_map'] = seg

    def transform(self, results: dict) -> dict:
        super().transform(results)
        if self.with_mask:
            self._load_masks(results)
        return results

    def __repr__(self) -> str:
        return f'{super().__repr__()[:-1]}, with_mask={self.with_mask})'


__all__ = ['ImageFileNotFoundError', 'ImageLoadError', 'LoadAnnotations', 'LoadDepthFromFile',
           'LoadImageFromFile', 'decode_coco_mask']
