"""Packing a pipeline's results into model inputs and a data sample."""
from typing import Dict, Optional, Sequence

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmengine.structures import InstanceData, PixelData

from mmfusion.errors import ConfigError
from mmfusion.registry import TRANSFORMS
from mmfusion.structures import MultiModalDataSample

from .modality import missing_modalities

# modality name -> key of the pipeline results that holds it
DEFAULT_INPUT_KEYS = dict(image='img', depth='depth', text='text', audio='audio',
                          vector='vector')


def modality_to_tensor(value):
    """Images (H, W[, C]) become (C, H, W) tensors; strings pass through."""
    if isinstance(value, (str, torch.Tensor)):
        return value
    if isinstance(value, np.ndarray):
        if value.ndim == 2:
            value = value[None]
        elif value.ndim == 3:
            value = value.transpose(2, 0, 1)
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, (list, tuple)) and all(isinstance(v, (int, float)) for v in value):
        return torch.tensor(value, dtype=torch.float32)
    raise TypeError(f'cannot pack a modality of type {type(value).__name__}')


@TRANSFORMS.register_module()
class PackMultiModalInputs(BaseTransform):
    """Pack the results of a pipeline for the model.

    Args:
        inputs: modality name -> results key, e.g. ``dict(image='img',
            text='question')``. Every sample must carry each of them or mark
            it missing (see below). Defaults to :data:`DEFAULT_INPUT_KEYS`,
            where a modality whose key is absent from the results is left
            out instead.
        meta_keys: results keys copied into the data sample's meta information.

    Missing modalities: a modality named in ``results['missing_modalities']``
    (set by a dataset with ``allow_missing_modalities=True``, or by
    ``RemoveModality`` / ``ModalityDropout``) is packed as ``None`` and the
    data sample's ``modality_mask`` (``{modality: bool}`` over the packed
    modalities, False = missing) says so; ``MultiModalDataPreprocessor`` and
    the models carry it to the fusion module.

    Returns:
        ``dict(inputs={modality: Tensor (C, H, W) | str | Tensor | None},
        data_samples=MultiModalDataSample)`` with ``modality_mask``,
        ``gt_label``, ``gt_answers``,
        ``gt_instances`` (``bboxes`` float (N, 4) from ``gt_bboxes``, ``labels``
        long (N,) from ``gt_bboxes_labels``, ``masks`` bool (N, H, W) from
        ``gt_masks``) and ``gt_sem_seg`` (``data`` long (1, H, W) from
        ``gt_seg_map``) when the results have them. As in mmdet, instances
        flagged in ``gt_ignore_flags`` (crowd regions) go to
        ``ignored_instances`` instead of ``gt_instances``, so a head that knows
        nothing of ignore flags never trains on them.
    """

    def __init__(self, inputs: Optional[Dict[str, str]] = None,
                 meta_keys: Sequence[str] = ('img_path', 'ori_shape', 'img_shape', 'scale_factor',
                                             'flip', 'text', 'question', 'question_id',
                                             'image_id', 'answer_type', 'img_id')) -> None:
        self.default_inputs = inputs is None
        self.inputs = dict(inputs) if inputs is not None else dict(DEFAULT_INPUT_KEYS)
        self.meta_keys = tuple(meta_keys)

    def transform(self, results: dict) -> dict:
        missing = missing_modalities(results)
        packed = {}
        for mod, key in self.inputs.items():
            if mod in missing:
                packed[mod] = None
            elif key in results:
                packed[mod] = modality_to_tensor(results[key])
            elif not self.default_inputs:
                raise ConfigError(
                    f'PackMultiModalInputs: inputs maps modality {mod!r} to results key '
                    f'{key!r}, which this sample lacks (it has {sorted(results)}); fix the '
                    f'mapping, or mark the modality missing (allow_missing_modalities=True '
                    f'in the dataset config, RemoveModality, ModalityDropout)')
        sample = MultiModalDataSample()
        sample.set_field({mod: value is not None for mod, value in packed.items()},
                         'modality_mask', field_type='metainfo')
        if 'gt_label' in results:
            sample.gt_label = results['gt_label']
        if 'gt_answers' in results:
            sample.gt_answers = results['gt_answers']
        if 'gt_bboxes' in results:
            self._pack_instances(results, sample)
        if 'gt_seg_map' in results:
            seg = torch.from_numpy(np.ascontiguousarray(results['gt_seg_map'])).long()
            sample.gt_sem_seg = PixelData(data=seg[None])
        # set_field, not set_metainfo: the latter deep-copies every value, a
        # noticeable share of a small-image pipeline, and these values are
        # this sample's own (the dataset hands out a fresh copy of its record)
        for key in self.meta_keys:
            if key in results:
                sample.set_field(results[key], key, field_type='metainfo')
        return dict(inputs=packed, data_samples=sample)

    @staticmethod
    def _pack_instances(results: dict, sample: MultiModalDataSample) -> None:
        """``gt_instances`` (and ``ignored_instances`` with ``gt_ignore_flags``)."""
        bboxes = torch.as_tensor(np.asarray(results['gt_bboxes']),
                                 dtype=torch.float32).reshape(-1, 4)
        fields = dict(bboxes=bboxes,
                      labels=torch.as_tensor(np.asarray(results['gt_bboxes_labels']),
                                             dtype=torch.long))
        if 'gt_masks' in results:
            fields['masks'] = torch.from_numpy(np.ascontiguousarray(results['gt_masks'])).bool()
        if 'gt_ignore_flags' not in results:
            sample.gt_instances = InstanceData(**fields)
            return
        ignored = torch.as_tensor(np.asarray(results['gt_ignore_flags'], dtype=bool)).reshape(-1)
        sample.gt_instances = InstanceData(**{k: v[~ignored] for k, v in fields.items()})
        sample.ignored_instances = InstanceData(**{k: v[ignored] for k, v in fields.items()})

    def __repr__(self) -> str:
        return f'{type(self).__name__}(inputs={self.inputs}, meta_keys={self.meta_keys})'
