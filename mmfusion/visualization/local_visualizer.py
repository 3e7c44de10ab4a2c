"""Drawing multimodal data samples: boxes, masks, label maps, the text prompt
and the depth map, ground truth and prediction side by side (as mmdet's
``DetLocalVisualizer`` does for images alone)."""
import math
import textwrap
from typing import Any, List, Optional, Sequence, Tuple

import cv2
import mmcv
import numpy as np
import torch
from mmengine.dist import master_only
from mmengine.structures import BaseDataElement, InstanceData, PixelData
from mmengine.visualization import Visualizer

from mmfusion.errors import ConfigError
from mmfusion.registry import VISUALIZERS

# 20 colours that stay distinguishable from each other (RGB)
DEFAULT_PALETTE = (
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
    (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212),
    (0, 128, 128), (220, 190, 255), (170, 110, 40), (255, 250, 200), (128, 0, 0),
    (170, 255, 195), (128, 128, 0), (255, 215, 180), (0, 0, 128), (128, 128, 128))
BAND_COLOR = (255, 255, 255)
CAPTION_COLOR = (235, 235, 235)
PANEL_GAP = 6  # pixels between panels


def to_numpy(value: Any) -> np.ndarray:
    """A tensor (any device) or array-like as a numpy array."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def resize_nearest(array: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """(H, W[, C]) -> (size[0], size[1][, C]) without mixing values (labels
    stay labels, pixels stay square when upscaling by an integer factor)."""
    if array.shape[:2] == tuple(size):
        return array
    dtype = array.dtype
    work = array.astype(np.uint8) if dtype == np.bool_ else array
    if work.dtype == np.int64:
        work = work.astype(np.int32)  # cv2 does not resize int64
    out = cv2.resize(work, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)
    return out.astype(dtype)


def readable_on(color: Sequence[int]) -> str:
    """Black or white, whichever reads better on an RGB ``color``."""
    red, green, blue = color
    return 'black' if 0.299 * red + 0.587 * green + 0.114 * blue > 150 else 'white'


def _escape(text: str) -> str:
    """Text for matplotlib, which reads ``$...$`` as mathematics."""
    return str(text).replace('$', r'\$')


@VISUALIZERS.register_module()
class MultiModalVisualizer(Visualizer):
    """Draws a :class:`~mmfusion.structures.MultiModalDataSample` onto its image.

    :meth:`add_datasample` makes one RGB picture: a panel with the ground
    truth, one with the prediction, optionally a colour-mapped depth panel,
    each under a title, and the text prompt (metainfo ``text``) as a caption
    band above them, so nothing covers the picture. Instances are drawn as
    boxes labelled with the class name (and score), their masks (if any) as
    translucent fills; label maps (``gt_sem_seg``/``pred_sem_seg``) as a
    colour overlay labelled at each class's largest region (class
    ``'background'`` and ``ignore_index`` stay uncoloured). Small images are
    first enlarged by an integer factor with nearest-neighbour interpolation
    so that drawings and text stay readable.

    Class names, and optionally ``palette`` (RGB triples per class) and
    ``ignore_index``, come from :attr:`dataset_meta` (the dataset's metainfo).

    Args:
        name, image, vis_backends, save_dir: as for
            :class:`mmengine.visualization.Visualizer`.
        min_size: images whose longer side is shorter are enlarged by the
            smallest integer factor that reaches it.
        line_width: box outline width in pixels.
        alpha: opacity of mask fills and label-map overlays, in (0, 1].
        font_size: text size in points.
        palette: RGB colours per class, cycled; default: the dataset's
            ``palette`` or :data:`DEFAULT_PALETTE`.
        depth_range: (near, far) depths that the depth panel's colours span,
            in the unit of the maps given; default: each map's own range
            (readings <= 0 mean none). The panel's title says the range.
    """

    def __init__(self, name: str = 'visualizer', image: Optional[np.ndarray] = None,
                 vis_backends: Optional[List[dict]] = None, save_dir: Optional[str] = None,
                 min_size: int = 256, line_width: float = 2, alpha: float = 0.5,
                 font_size: float = 9, palette: Optional[Sequence[Sequence[int]]] = None,
                 depth_range: Optional[Tuple[float, float]] = None) -> None:
        super().__init__(name=name, image=image, vis_backends=vis_backends, save_dir=save_dir)
        owner = type(self).__name__
        if isinstance(min_size, bool) or not isinstance(min_size, int) or min_size < 1:
            raise ConfigError(f'{owner}: min_size must be a positive int (pixels), '
                              f'got {min_size!r}')
        if not 0 < alpha <= 1:
            raise ConfigError(f'{owner}: alpha must be in (0, 1], got {alpha!r}')
        if line_width <= 0 or font_size <= 0:
            raise ConfigError(f'{owner}: line_width and font_size must be positive, got '
                              f'{line_width!r} and {font_size!r}')
        if depth_range is not None and not (len(depth_range) == 2
                                            and 0 <= depth_range[0] < depth_range[1]):
            raise ConfigError(f'{owner}: depth_range must be (near, far) with 0 <= near < far, '
                              f'got {depth_range!r}')
        self.depth_range = None if depth_range is None else tuple(map(float, depth_range))
        self.min_size = min_size
        self.line_width = line_width
        self.alpha = alpha
        self.font_size = font_size
        self.palette = [tuple(int(c) for c in color) for color in palette] if palette else None

    # -- class names and colours ------------------------------------------

    def class_name(self, label: int) -> str:
        classes = (self.dataset_meta or {}).get('classes')
        return str(classes[label]) if classes is not None and 0 <= label < len(classes) \
            else str(label)

    def class_color(self, label: int) -> Tuple[int, int, int]:
        palette = self.palette or (self.dataset_meta or {}).get('palette') or DEFAULT_PALETTE
        return tuple(int(c) for c in palette[label % len(palette)])

    def _uncoloured_labels(self) -> set:
        """Label-map values left as they are: the ignore index, and the
        background class, whose colour would only hide the picture."""
        meta = self.dataset_meta or {}
        skipped = {int(meta.get('ignore_index', 255))}
        skipped |= {i for i, name in enumerate(meta.get('classes') or ())
                    if name == 'background'}
        return skipped

    def upscale_factor(self, height: int, width: int) -> int:
        """The integer enlargement that brings the longer side to ``min_size``."""
        return max(1, math.ceil(self.min_size / max(height, width)))

    def _text_px(self, points: float) -> float:
        return points * self.dpi / 72

    # -- panels --------------------------------------------------------------

    def _overlay_label_map(self, image: np.ndarray, label_map: np.ndarray
                           ) -> List[Tuple[str, Tuple[float, float]]]:
        """Blend each class's colour into ``image`` (in place); return
        (class name, centre of its largest region) for the labels."""
        labels = []
        skipped = self._uncoloured_labels()
        for value in np.unique(label_map):
            if int(value) in skipped:
                continue
            region = (label_map == value).astype(np.uint8)
            color = self.class_color(int(value))
            inside = region.astype(bool)
            image[inside] = (image[inside] * (1 - self.alpha)
                             + np.array(color, dtype=np.float32) * self.alpha).astype(np.uint8)
            # an outline keeps the region visible whatever colour it covers
            contours, _ = cv2.findContours(region, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
            cv2.drawContours(image, contours, -1, color, max(1, round(self.line_width)))
            _, _, stats, centroids = cv2.connectedComponentsWithStats(region, connectivity=8)
            largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
            labels.append((self.class_name(int(value)), tuple(centroids[largest])))
        return labels

    def _draw_instances(self, instances: InstanceData, scale: int, size: Tuple[int, int],
                        score_thr: Optional[float]) -> None:
        """Masks, boxes and labels onto the current image; ``score_thr``
        (predictions only) drops the less confident instances and adds the
        scores to the labels."""
        keep = np.ones(len(instances), dtype=bool)
        scores = to_numpy(instances.scores) if 'scores' in instances else None
        if score_thr is not None and scores is not None:
            keep = scores > score_thr
        if not keep.any():
            return
        labels = to_numpy(instances.labels)[keep].astype(int) if 'labels' in instances \
            else np.zeros(int(keep.sum()), dtype=int)
        colors = [self.class_color(label) for label in labels]
        if 'masks' in instances:
            masks = to_numpy(instances.masks)[keep].astype(bool)
            masks = np.stack([resize_nearest(m, size) for m in masks])
            self.draw_binary_masks(masks, colors=colors, alphas=self.alpha)
        if 'bboxes' not in instances:
            return
        boxes = to_numpy(instances.bboxes)[keep].reshape(-1, 4).astype(np.float64) * scale
        boxes[:, 0::2] = boxes[:, 0::2].clip(0, size[1] - 1)
        boxes[:, 1::2] = boxes[:, 1::2].clip(0, size[0] - 1)
        self.draw_bboxes(boxes, edge_colors=colors, line_widths=self.line_width)
        texts = [self.class_name(label) for label in labels]
        if score_thr is not None and scores is not None:
            texts = [f'{text} {score:.2f}' for text, score in zip(texts, scores[keep])]
        # labels start inside the box's top-left corner, moved left when they
        # would run off the panel (text width estimated from the font size)
        positions = boxes[:, :2] + self.line_width
        text_widths = np.array([len(t) for t in texts]) * 0.6 * self._text_px(self.font_size)
        positions[:, 0] = np.minimum(positions[:, 0], size[1] - text_widths - 2).clip(0)
        self.draw_texts([_escape(t) for t in texts], positions,
                        font_sizes=self.font_size, colors=[readable_on(c) for c in colors],
                        vertical_alignments='top',
                        bboxes=[dict(facecolor=np.array(c) / 255, alpha=0.8, pad=0.7,
                                     edgecolor='none') for c in colors])

    def _draw_panel(self, image: np.ndarray, scale: int, instances: Optional[InstanceData],
                    label_map: Optional[PixelData], score_thr: Optional[float]) -> np.ndarray:
        """One panel: the enlarged ``image`` with a label map and instances."""
        image = image.copy()
        size = image.shape[:2]
        region_labels = []
        if label_map is not None:
            labels = to_numpy(label_map.data).reshape(label_map.data.shape[-2:])
            region_labels = self._overlay_label_map(image, resize_nearest(labels, size))
        self.set_image(image)
        if region_labels:
            self.draw_texts([_escape(name) for name, _ in region_labels],
                            np.array([pos for _, pos in region_labels]),
                            font_sizes=self.font_size, colors='white',
                            vertical_alignments='center', horizontal_alignments='center',
                            bboxes=dict(facecolor='black', alpha=0.6, pad=0.7,
                                        edgecolor='none'))
        if instances is not None and len(instances) > 0:
            self._draw_instances(instances, scale, size, score_thr)
        return self.get_image()

    def depth_panel(self, depth: Any, size: Tuple[int, int]
                    ) -> Tuple[np.ndarray, Tuple[float, float]]:
        """A depth map ((H, W), (1, H, W) or (H, W, 1); any unit) as an RGB
        picture of ``size``: near red, far blue, no reading (<= 0 or not
        finite) black. Returns it and the (near, far) depths the colours span:
        ``depth_range``, or the map's own range."""
        depth = to_numpy(depth).astype(np.float32).squeeze()
        if depth.ndim != 2:
            raise ValueError(f'depth must be one map (H, W), (1, H, W) or (H, W, 1), got shape '
                             f'{to_numpy(depth).shape}')
        valid = np.isfinite(depth) & (depth > 0)
        if self.depth_range is not None:
            near, far = self.depth_range
        elif valid.any():
            near, far = float(depth[valid].min()), float(depth[valid].max())
        else:
            near, far = 0.0, 1.0
        closeness = np.zeros_like(depth)
        closeness[valid] = ((far - depth[valid]) / max(far - near, 1e-6)).clip(0, 1)
        colored = cv2.applyColorMap((closeness * 255).astype(np.uint8), cv2.COLORMAP_JET)
        colored[~valid] = 0
        return resize_nearest(colored[..., ::-1], size), (near, far)  # BGR -> RGB

    # -- layout ---------------------------------------------------------------

    def _compose(self, panels: List[np.ndarray], titles: List[str],
                 caption: Optional[str]) -> np.ndarray:
        """Panels side by side under their titles, the caption band on top."""
        height = max(p.shape[0] for p in panels)
        width = sum(p.shape[1] for p in panels) + PANEL_GAP * (len(panels) - 1)
        line_px = int(math.ceil(self._text_px(self.font_size) * 1.6))
        lines = []
        if caption:
            chars = max(10, int(width / (0.6 * self._text_px(self.font_size + 1))))
            lines = textwrap.wrap(f'prompt: "{caption}"', chars) or ['']
        caption_px = (len(lines) * line_px + line_px // 2) if lines else 0
        top = caption_px + line_px
        canvas = np.full((top + height, width, 3), BAND_COLOR, dtype=np.uint8)
        canvas[:caption_px] = CAPTION_COLOR
        x, title_positions = 0, []
        for panel in panels:
            canvas[top:top + panel.shape[0], x:x + panel.shape[1]] = panel
            title_positions.append((x + 2, caption_px + line_px / 2))
            x += panel.shape[1] + PANEL_GAP
        self.set_image(canvas)
        texts = [_escape(t) for t in titles] + [_escape(line) for line in lines]
        positions = title_positions + [(4, line_px // 4 + (i + 0.5) * line_px)
                                       for i in range(len(lines))]
        self.draw_texts(texts, np.array(positions),
                        font_sizes=[self.font_size] * len(titles)
                        + [self.font_size + 1] * len(lines),
                        colors='black', vertical_alignments='center')
        return self.get_image()

    @master_only
    def add_datasample(self, name: str, image: np.ndarray, data_sample: Optional[Any] = None,
                       draw_gt: bool = True, draw_pred: bool = True, show: bool = False,
                       wait_time: float = 0, out_file: Optional[str] = None,
                       pred_score_thr: float = 0.3, depth: Optional[Any] = None,
                       step: int = 0) -> np.ndarray:
        """Draw a data sample; save it as ``out_file`` (PNG) or hand it to the
        visualisation backends.

        Args:
            name: the picture's name for the backends and the window.
            image: (H, W, 3) uint8 RGB (or (H, W) grey); boxes, masks and label
                maps are in its pixel coordinates (masks and maps of another
                size are resized to it).
            data_sample: a :class:`~mmfusion.structures.MultiModalDataSample`
                with any of ``gt_instances``, ``gt_sem_seg``,
                ``pred_instances``, ``pred_sem_seg`` and metainfo ``text``.
            draw_gt, draw_pred: draw the ground-truth / prediction panel.
            show: also show the picture in a window.
            wait_time: seconds the window stays (0: until a key is pressed).
            out_file: write the picture there (parent folders are made).
            pred_score_thr: predicted instances scoring at most this are left out.
            depth: the aligned depth map, drawn as an extra panel.
            step: the backends' global step.

        Returns:
            The drawn picture, (H', W', 3) uint8 RGB.
        """
        image = to_numpy(image)
        if image.ndim == 2:
            image = np.stack([image] * 3, axis=-1)
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f'image must be (H, W, 3) RGB or (H, W) grey, got shape '
                             f'{image.shape}')
        image = image.clip(0, 255).astype(np.uint8)
        scale = self.upscale_factor(*image.shape[:2])
        big = resize_nearest(image, (image.shape[0] * scale, image.shape[1] * scale))

        sample = data_sample if data_sample is not None else BaseDataElement()
        panels, titles = [], []
        for wanted, prefix, title, thr in ((draw_gt, 'gt', 'ground truth', None),
                                           (draw_pred, 'pred', 'prediction', pred_score_thr)):
            instances = sample.get(f'{prefix}_instances')
            label_map = sample.get(f'{prefix}_sem_seg')
            if wanted and (instances is not None or label_map is not None):
                panels.append(self._draw_panel(big, scale, instances, label_map, thr))
                titles.append(title)
        if not panels:
            panels, titles = [big], ['image']
        if depth is not None:
            panel, (near, far) = self.depth_panel(depth, big.shape[:2])
            panels.append(panel)
            titles.append(f'depth {near:.3g}-{far:.3g} (red: near)')
        caption = sample.metainfo.get('text')
        drawn = self._compose(panels, titles, caption)

        if show:
            self.show(drawn, win_name=name, wait_time=wait_time)
        if out_file is not None:
            # mmcv writes BGR; the strongest PNG compression makes files 3x smaller
            mmcv.imwrite(drawn[..., ::-1], out_file, params=[cv2.IMWRITE_PNG_COMPRESSION, 9])
        else:
            self.add_image(name, drawn, step)
        return drawn
