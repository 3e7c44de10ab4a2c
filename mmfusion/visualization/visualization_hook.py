"""A hook that draws every test sample's ground truth and prediction into PNGs."""
import os
import os.path as osp
import re
from collections import Counter
from typing import Any, Optional, Sequence

import cv2
import mmcv
import numpy as np
import torch
from mmengine.dist import is_main_process
from mmengine.hooks import Hook

from mmfusion.errors import ConfigError
from mmfusion.registry import HOOKS

from .local_visualizer import MultiModalVisualizer, resize_nearest, to_numpy


def _slug(text: str, max_chars: int = 40) -> str:
    """``'the red circle.'`` -> ``'the_red_circle'``: a file-name piece."""
    return re.sub(r'[^A-Za-z0-9]+', '_', text).strip('_')[:max_chars]


@HOOKS.register_module()
class MultiModalVisualizationHook(Hook):
    """Writes ``<out_dir>/<image stem>[_<prompt>].png`` for every test sample:
    ground truth | prediction (| depth), with the text prompt as a caption.

    The picture is read from the sample's ``img_path`` at its original size
    (predictions are in original coordinates); ground-truth boxes of a
    resized input are mapped back with ``scale_factor``. The depth panel
    shows the batch's ``depth`` input (what the model saw), or else the file
    at the sample's ``depth_path``. ``tools/test.py --show-dir`` adds this hook.
    Only the main process draws (as every MMEngine visualizer).

    Args:
        out_dir: the folder; a relative one is under the run's work dir.
        score_thr: predicted instances scoring at most this are not drawn.
        draw_gt: draw the ground-truth panel next to the prediction.
        draw_depth: add the depth panel when the sample has depth.
    """

    priority = 'NORMAL'

    def __init__(self, out_dir: str, score_thr: float = 0.3, draw_gt: bool = True,
                 draw_depth: bool = True) -> None:
        if not (isinstance(out_dir, str) and out_dir):
            raise ConfigError(f'MultiModalVisualizationHook: out_dir must be a folder path, '
                              f'got {out_dir!r}')
        if not 0 <= score_thr <= 1:
            raise ConfigError(f'MultiModalVisualizationHook: score_thr must be in [0, 1], '
                              f'got {score_thr!r}')
        self.out_dir = out_dir
        self._out_path = out_dir
        self.score_thr = score_thr
        self.draw_gt = draw_gt
        self.draw_depth = draw_depth
        self._visualizer: Optional[MultiModalVisualizer] = None
        self._names: Counter = Counter()

    def before_test(self, runner) -> None:
        self._out_path = osp.join(runner.work_dir, self.out_dir)  # an absolute one stays
        os.makedirs(self._out_path, exist_ok=True)
        self._names.clear()
        if isinstance(runner.visualizer, MultiModalVisualizer):
            self._visualizer = runner.visualizer
        else:
            # the config's visualizer cannot draw samples; the test loop gave
            # it the dataset's metainfo (class names), which ours reuses
            self._visualizer = MultiModalVisualizer(name=f'{runner.experiment_name}_samples')
            self._visualizer.dataset_meta = runner.visualizer.dataset_meta

    def after_test_iter(self, runner, batch_idx: int, data_batch: Optional[dict] = None,
                        outputs: Optional[Sequence] = None) -> None:
        if not is_main_process():
            return  # MMEngine's visualizers draw in the main process only
        for index, sample in enumerate(outputs or ()):
            name = self._file_name(sample, batch_idx, index)
            depth = self._depth(sample, data_batch, index) if self.draw_depth else None
            self._visualizer.add_datasample(
                name, self._image(sample, data_batch, index), self._gt_to_original(sample),
                draw_gt=self.draw_gt, pred_score_thr=self.score_thr, depth=depth,
                out_file=osp.join(self._out_path, name))

    def _file_name(self, sample: Any, batch_idx: int, index: int) -> str:
        """The image stem, the prompt, and a count when the pair repeats."""
        path = sample.metainfo.get('img_path')
        name = (osp.splitext(osp.basename(path))[0] if path
                else f'batch{batch_idx:05d}_{index:03d}')
        text = sample.metainfo.get('text')
        if text:
            name += '_' + _slug(text)
        self._names[name] += 1
        count = self._names[name]
        return f'{name}.png' if count == 1 else f'{name}_{count}.png'

    @staticmethod
    def _original_size(array: np.ndarray, sample: Any) -> np.ndarray:
        """A pipeline-sized picture at the sample's original size, where
        predictions are."""
        ori_shape = sample.metainfo.get('ori_shape')
        return resize_nearest(array, tuple(ori_shape[:2])) if ori_shape else array

    @classmethod
    def _image(cls, sample: Any, data_batch: Optional[dict], index: int) -> np.ndarray:
        """RGB: the file at ``img_path``, else the batch's (BGR) image input."""
        path = sample.metainfo.get('img_path')
        if path:
            return mmcv.imread(path, channel_order='rgb')
        image = (data_batch or {}).get('inputs', {}).get('image')
        if image is None:
            raise ValueError('MultiModalVisualizationHook: a test sample has neither an '
                             'img_path nor an image input to draw on')
        return cls._original_size(to_numpy(image[index]).transpose(1, 2, 0)[..., ::-1], sample)

    @classmethod
    def _depth(cls, sample: Any, data_batch: Optional[dict], index: int
               ) -> Optional[np.ndarray]:
        """The depth the model saw (in the pipeline's unit), at the original
        size; else the file at ``depth_path`` (in its stored unit); else None."""
        inputs = (data_batch or {}).get('inputs')
        if isinstance(inputs, dict) and inputs.get('depth') is not None:
            depth = to_numpy(inputs['depth'][index]).astype(np.float32).squeeze()
            return cls._original_size(depth, sample)
        path = sample.metainfo.get('depth_path')
        return cv2.imread(path, cv2.IMREAD_UNCHANGED) if path else None

    @staticmethod
    def _gt_to_original(sample: Any) -> Any:
        """``sample`` with its ground-truth boxes in original-image pixels
        (masks and label maps are resized by the visualizer)."""
        factor = sample.metainfo.get('scale_factor')
        if 'gt_instances' not in sample or factor is None or tuple(factor) == (1, 1):
            return sample
        w_scale, h_scale = factor
        divisor = torch.tensor([w_scale, h_scale, w_scale, h_scale], dtype=torch.float32)
        # clone() shares the fields: new containers keep the test outputs as they are
        instances = sample.gt_instances.clone()
        instances.bboxes = instances.bboxes.cpu() / divisor
        sample = sample.clone()
        sample.gt_instances = instances
        return sample
