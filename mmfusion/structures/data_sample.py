"""The one data sample type every mmfusion task uses."""
from numbers import Number
from typing import List, Sequence, Union

import numpy as np
import torch
from mmengine.structures import BaseDataElement, InstanceData, PixelData

LabelType = Union[torch.Tensor, np.ndarray, Sequence[int], int]


def to_label_tensor(value: LabelType) -> torch.Tensor:
    """Convert an int, a sequence of ints or an array into a 1-D long tensor."""
    if isinstance(value, torch.Tensor):
        tensor = value
    elif isinstance(value, np.ndarray):
        tensor = torch.from_numpy(value)
    elif isinstance(value, Number):
        tensor = torch.tensor([int(value)])
    elif isinstance(value, Sequence) and not isinstance(value, str):
        tensor = torch.tensor([int(v) for v in value], dtype=torch.long)
    else:
        raise TypeError(f'a label must be an int, a sequence of ints, an array or a tensor, '
                        f'got {type(value).__name__}: {value!r}')
    if tensor.ndim == 0:
        tensor = tensor.unsqueeze(0)
    if tensor.ndim != 1:
        raise ValueError(f'a label must be 1-D, got shape {tuple(tensor.shape)}')
    return tensor.long()


class MultiModalDataSample(BaseDataElement):
    """Annotations and predictions of one multimodal sample, for every task.

    Meta information (set with :meth:`set_metainfo`, never moved to a device):
    ``img_path``, ``img_shape``, ``ori_shape``, ``text``, ``question``,
    ``question_id``, ``answer_type`` ... whatever the pipeline packs, and
    ``modality_mask``: ``{modality: bool}``, False for a modality this sample
    lacks (see :meth:`has_modality`; set by ``PackMultiModalInputs``).

    Ground truth fields:
        gt_label (LongTensor (1,) or (K,)): class index (single-label) or
            indices of the positive classes (multi-label).
        gt_answers (list[str]): the raw annotator answers of a VQA question.
        gt_instances (InstanceData): ``bboxes`` (N, 4) xyxy, ``labels`` (N,),
            optional ``masks``.
        gt_sem_seg (PixelData): ``data`` (1, H, W) class indices.

    Prediction fields:
        pred_label (LongTensor (1,)), pred_score (Tensor (C,)): classification.
        pred_answer (str), pred_score (Tensor (A,)): VQA.
        pred_instances (InstanceData), pred_sem_seg (PixelData): dense tasks.
    """

    # --- missing modalities ---------------------------------------------
    def has_modality(self, modality: str) -> bool:
        """False when ``modality_mask`` marks ``modality`` missing; a sample
        without a ``modality_mask`` has every modality."""
        return bool(self.metainfo.get('modality_mask', {}).get(modality, True))

    # --- classification -------------------------------------------------
    @property
    def gt_label(self) -> torch.Tensor:
        return self._gt_label

    @gt_label.setter
    def gt_label(self, value: LabelType) -> None:
        self.set_field(to_label_tensor(value), '_gt_label', dtype=torch.Tensor)

    @gt_label.deleter
    def gt_label(self) -> None:
        del self._gt_label

    @property
    def pred_label(self) -> torch.Tensor:
        return self._pred_label

    @pred_label.setter
    def pred_label(self, value: LabelType) -> None:
        self.set_field(to_label_tensor(value), '_pred_label', dtype=torch.Tensor)

    @pred_label.deleter
    def pred_label(self) -> None:
        del self._pred_label

    @property
    def pred_score(self) -> torch.Tensor:
        return self._pred_score

    @pred_score.setter
    def pred_score(self, value: torch.Tensor) -> None:
        if not isinstance(value, torch.Tensor):
            value = torch.as_tensor(value)
        self.set_field(value, '_pred_score', dtype=torch.Tensor)

    @pred_score.deleter
    def pred_score(self) -> None:
        del self._pred_score

    # --- VQA --------------------------------------------------------------
    @property
    def gt_answers(self) -> List[str]:
        return self._gt_answers

    @gt_answers.setter
    def gt_answers(self, value: Sequence[str]) -> None:
        if isinstance(value, str) or not all(isinstance(a, str) for a in value):
            raise TypeError(f'gt_answers must be a list of strings, got {value!r}')
        self.set_field(list(value), '_gt_answers', dtype=list)

    @gt_answers.deleter
    def gt_answers(self) -> None:
        del self._gt_answers

    @property
    def pred_answer(self) -> str:
        return self._pred_answer

    @pred_answer.setter
    def pred_answer(self, value: str) -> None:
        self.set_field(value, '_pred_answer', dtype=str)

    @pred_answer.deleter
    def pred_answer(self) -> None:
        del self._pred_answer

    # --- dense tasks -----------------------------------------------------
    @property
    def gt_instances(self) -> InstanceData:
        return self._gt_instances

    @gt_instances.setter
    def gt_instances(self, value: InstanceData) -> None:
        self.set_field(value, '_gt_instances', dtype=InstanceData)

    @gt_instances.deleter
    def gt_instances(self) -> None:
        del self._gt_instances

    @property
    def pred_instances(self) -> InstanceData:
        return self._pred_instances

    @pred_instances.setter
    def pred_instances(self, value: InstanceData) -> None:
        self.set_field(value, '_pred_instances', dtype=InstanceData)

    @pred_instances.deleter
    def pred_instances(self) -> None:
        del self._pred_instances

    @property
    def gt_sem_seg(self) -> PixelData:
        return self._gt_sem_seg

    @gt_sem_seg.setter
    def gt_sem_seg(self, value: PixelData) -> None:
        self.set_field(value, '_gt_sem_seg', dtype=PixelData)

    @gt_sem_seg.deleter
    def gt_sem_seg(self) -> None:
        del self._gt_sem_seg

    @property
    def pred_sem_seg(self) -> PixelData:
        return self._pred_sem_seg

    @pred_sem_seg.setter
    def pred_sem_seg(self, value: PixelData) -> None:
        self.set_field(value, '_pred_sem_seg', dtype=PixelData)

    @pred_sem_seg.deleter
    def pred_sem_seg(self) -> None:
        del self._pred_sem_seg
