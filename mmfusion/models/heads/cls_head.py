"""Classification heads: single-label (softmax) and multi-label (sigmoid)."""
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule

from mmfusion.registry import MODELS
from mmfusion.structures import MultiModalDataSample

from ..layers import classifier_mlp


@MODELS.register_module()
class ClsHead(BaseModule):
    """Single-label classification of the fused vector.

    Args:
        in_dim: size of the fused vector (filled in by the model).
        num_classes: number of classes C.
        hidden_dim: an MLP hidden layer (0: a single linear layer).
        dropout: before the classifier.
        fc: False uses the input as the logits (no layer at all), for fusions
            that already decide per class, e.g. ``LateFusion(out_dim=C)``;
            ``in_dim`` must then equal ``num_classes``.
        loss: default softmax cross-entropy; a sigmoid loss (e.g.
            ``FocalLoss``) gets one-hot targets and sigmoid scores.

    Input: (B, in_dim). Output: (B, C) logits. ``predict`` sets
    ``pred_score`` (C,) and ``pred_label`` (1,) on each data sample.
    """

    def __init__(self, in_dim: int, num_classes: int, hidden_dim: int = 0, dropout: float = 0.0,
                 fc: bool = True, loss: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if num_classes < 1:
            raise ValueError(f'{type(self).__name__}: num_classes must be >= 1, got {num_classes}')
        self.num_classes = int(num_classes)
        if fc:
            self.classifier = classifier_mlp(in_dim, self.num_classes, hidden_dim, dropout)
        else:
            if in_dim != num_classes or hidden_dim:
                raise ValueError(f'{type(self).__name__}(fc=False) uses the fused vector as the '
                                 f'logits: in_dim ({in_dim}) must equal num_classes '
                                 f'({num_classes}) and hidden_dim must be 0')
            self.classifier = nn.Identity()
        self.loss_module = MODELS.build(loss or self.default_loss())

    @staticmethod
    def default_loss() -> dict:
        return dict(type='CrossEntropyLoss')

    @property
    def use_sigmoid(self) -> bool:
        return bool(getattr(self.loss_module, 'use_sigmoid', False))

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.classifier(feats)

    def targets(self, data_samples: Sequence[MultiModalDataSample],
                device: torch.device) -> torch.Tensor:
        """(B,) class indices; (B, C) one-hot rows for a sigmoid loss."""
        if data_samples and all('gt_score' in s for s in data_samples):
            # soft labels of batch mixing (MultiModalMixup / MultiModalCutMix)
            return torch.stack([s.gt_score for s in data_samples]).float().to(device)
        labels = torch.cat([s.gt_label[:1] for s in data_samples]).to(device)
        if self.use_sigmoid:
            return F.one_hot(labels, self.num_classes).float()
        return labels

    def loss(self, feats: torch.Tensor,
             data_samples: Sequence[MultiModalDataSample]) -> Dict[str, torch.Tensor]:
        logits = self(feats)
        return dict(loss=self.loss_module(logits, self.targets(data_samples, logits.device)))

    def scores(self, logits: torch.Tensor) -> torch.Tensor:
        # on the scale the loss trained: a softmax, or independent sigmoids
        return logits.sigmoid() if self.use_sigmoid else logits.softmax(dim=1)

    def predict(self, feats: torch.Tensor,
                data_samples: Optional[Sequence[MultiModalDataSample]] = None
                ) -> List[MultiModalDataSample]:
        scores = self.scores(self(feats)).detach()
        if data_samples is None:
            data_samples = [MultiModalDataSample() for _ in range(scores.size(0))]
        for sample, score in zip(data_samples, scores):
            sample.pred_score = score
            sample.pred_label = self.labels_from_score(score)
        return list(data_samples)

    def labels_from_score(self, score: torch.Tensor) -> torch.Tensor:
        return score.argmax().reshape(1)


@MODELS.register_module()
class MultiLabelClsHead(ClsHead):
    """Multi-label classification: an independent sigmoid per class.

    Args (besides :class:`ClsHead`'s):
        thr: a class is predicted when its score is >= ``thr``.
        loss: default sigmoid cross-entropy averaged over classes.

    Targets come from ``gt_label``, the indices of the positive classes.
    ``predict`` sets ``pred_score`` (C,) and ``pred_label`` (the indices at or
    above ``thr``, possibly empty).
    """

    def __init__(self, in_dim: int, num_classes: int, thr: float = 0.5, **kwargs) -> None:
        super().__init__(in_dim, num_classes, **kwargs)
        if not self.use_sigmoid:
            raise ValueError('MultiLabelClsHead needs a sigmoid loss, e.g. '
                             "dict(type='CrossEntropyLoss', use_sigmoid=True) or FocalLoss")
        self.thr = float(thr)

    @staticmethod
    def default_loss() -> dict:
        return dict(type='CrossEntropyLoss', use_sigmoid=True)

    def targets(self, data_samples: Sequence[MultiModalDataSample],
                device: torch.device) -> torch.Tensor:
        if data_samples and all('gt_score' in s for s in data_samples):
            return torch.stack([s.gt_score for s in data_samples]).float().to(device)
        targets = torch.zeros(len(data_samples), self.num_classes)
        for i, sample in enumerate(data_samples):
            labels = sample.gt_label
            if labels.numel() and (labels.min() < 0 or labels.max() >= self.num_classes):
                raise ValueError(f'MultiLabelClsHead: sample {i} has labels {labels.tolist()} '
                                 f'outside [0, {self.num_classes})')
            targets[i, labels] = 1.0
        return targets.to(device)

    def labels_from_score(self, score: torch.Tensor) -> torch.Tensor:
        return torch.nonzero(score >= self.thr).flatten()
