"""Semantic segmentation head over a fused feature pyramid (Panoptic FPN style)."""
import math
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmengine.structures import PixelData
from torch import nn

from mmfusion.errors import ConfigError
from mmfusion.registry import MODELS
from mmfusion.structures import MultiModalDataSample

from ..layers import check_int, check_strides, conv_gn_relu, image_size, norm_groups_for
from ..losses.dice_loss import DiceLoss


@MODELS.register_module()
class FPNSegHead(BaseModule):
    """The semantic segmentation branch of Panoptic FPN (Kirillov et al.,
    "Panoptic Feature Pyramid Networks", CVPR 2019).

    Each level l goes through ``max(1, n_l)`` conv3x3-GroupNorm-ReLU blocks,
    with ``n_l = log2(stride_l / stride_0)``, each followed by a bilinear
    upsampling to the next finer level's size, so that every level arrives at
    the finest level's size; the levels are summed, a 1x1 conv gives the class
    logits, and they are upsampled to the input size.

    Loss: cross-entropy over the pixels whose label is not ``ignore_index``,
    plus, with ``loss_dice_weight > 0``, the multi-class soft Dice loss
    (:class:`~mmfusion.models.losses.DiceLoss`), both at the input
    resolution.

    Binary (e.g. referring) segmentation uses ``num_classes=2``
    (background, object) with the same softmax head: the predicted mask is
    where class 1 wins.

    Args:
        num_classes: C >= 2 classes (background included, if any).
        in_channels: channels of every fused map (filled in by the model).
        channels: channels of the per-level conv blocks (128 in the paper).
        strides: stride of each input level, finest first; each stride a
            power-of-two multiple of the finest.
        norm_groups: GroupNorm groups (default gcd(32, channels)).
        dropout: before the classifier.
        ignore_index: label of pixels left out of the loss.
        loss_ce_weight, loss_dice_weight: weights of the two losses (0 leaves
            the Dice loss out).
        class_weight: optional per-class weights (C,) of the cross-entropy.

    ``forward(maps)``: [Tensor (B, in_channels, H_l, W_l)] -> logits
    (B, C, H_0, W_0) at the finest level.

    The input size is the metainfo ``batch_input_shape`` when the data
    samples carry it, else ``(H_0, W_0) * strides[0]``.

    ``loss(maps, data_samples)`` uses ``data_samples[i].gt_sem_seg.data``
    (1, h, w) class indices (``ignore_index`` = not labelled), the image's
    region of the padded input (padding is ignored); returns
    ``dict(loss_ce=...[, loss_dice=...])``.

    ``predict(maps, data_samples)`` sets ``pred_sem_seg`` (PixelData,
    ``data`` LongTensor (1, H, W)): the logits are cropped to ``img_shape``
    (dropping the padding), resized to ``ori_shape`` and arg-maxed.
    """

    def __init__(self, num_classes: int, in_channels: int, channels: int = 128,
                 strides: Sequence[int] = (8, 16, 32), norm_groups: Optional[int] = None,
                 dropout: float = 0.1, ignore_index: int = 255, loss_ce_weight: float = 1.0,
                 loss_dice_weight: float = 0.0, class_weight: Optional[Sequence[float]] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        owner = type(self).__name__
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ConfigError(f'{owner}: num_classes must be an integer >= 2, got '
                              f'{num_classes!r}; binary (referring) segmentation uses '
                              'num_classes=2 (background, object)')
        check_int(owner, 'in_channels', in_channels)
        check_int(owner, 'channels', channels)
        self.strides = check_strides(owner, strides)
        num_upsamples = [math.log2(s / self.strides[0]) for s in self.strides]
        if any(n != int(n) for n in num_upsamples):
            raise ConfigError(f'{owner}: every stride must be a power-of-two multiple of the '
                              f'finest, got strides={self.strides}')
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f'{owner}: dropout must be in [0, 1), got {dropout}')
        if loss_ce_weight < 0 or loss_dice_weight < 0 or loss_ce_weight + loss_dice_weight == 0:
            raise ConfigError(f'{owner}: loss_ce_weight ({loss_ce_weight}) and loss_dice_weight '
                              f'({loss_dice_weight}) must be >= 0 and not both 0')
        if class_weight is not None and len(class_weight) != num_classes:
            raise ConfigError(f'{owner}: class_weight has {len(class_weight)} entries, '
                              f'num_classes={num_classes}')
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.channels = channels
        self.ignore_index = int(ignore_index)
        self.loss_ce_weight = float(loss_ce_weight)
        self.loss_dice_weight = float(loss_dice_weight)
        self.num_upsamples = [int(n) for n in num_upsamples]
        groups = norm_groups_for(owner, channels, norm_groups)
        self.branches = nn.ModuleList([
            nn.ModuleList([conv_gn_relu(in_channels if j == 0 else channels, channels, groups)
                           for j in range(max(1, n))])
            for n in self.num_upsamples])
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.conv_seg = nn.Conv2d(channels, num_classes, kernel_size=1)
        weight = torch.tensor(class_weight, dtype=torch.float) if class_weight is not None else None
        self.register_buffer('class_weight', weight, persistent=False)
        self.dice = DiceLoss(ignore_index=self.ignore_index)

    def forward(self, maps: Sequence[torch.Tensor]) -> torch.Tensor:
        owner = type(self).__name__
        if len(maps) != len(self.strides):
            raise ConfigError(f'{owner}: strides={self.strides} describe {len(self.strides)} '
                              f'levels but got {len(maps)} maps; give one stride per level')
        fused = None
        for level, (x, blocks) in enumerate(zip(maps, self.branches)):
            if x.ndim != 4 or x.shape[1] != self.in_channels:
                raise ConfigError(f'{owner}: in_channels={self.in_channels} but level {level} '
                                  f'has shape {tuple(x.shape)}')
            for j, block in enumerate(blocks):
                x = block(x)
                if j < self.num_upsamples[level]:
                    # to the exact size of the next finer level (odd sizes round up)
                    x = F.interpolate(x, size=maps[level - 1 - j].shape[-2:], mode='bilinear',
                                      align_corners=False)
            fused = x if fused is None else fused + x
        return self.conv_seg(self.dropout(fused))

    def input_size(self, logits: torch.Tensor,
                   data_samples: Optional[Sequence[MultiModalDataSample]]) -> Tuple[int, int]:
        """(H, W) of the padded input batch."""
        if data_samples:
            shape = image_size(data_samples[0], 'batch_input_shape')
            if shape is not None:
                return shape
        return logits.shape[-2] * self.strides[0], logits.shape[-1] * self.strides[0]

    def upsampled_logits(self, maps: Sequence[torch.Tensor],
                         data_samples: Optional[Sequence[MultiModalDataSample]]) -> torch.Tensor:
        """(B, C, H, W) logits at the input size."""
        logits = self(maps)
        return F.interpolate(logits, size=self.input_size(logits, data_samples),
                             mode='bilinear', align_corners=False)

    # ------------------------------------------------------------- losses
    def targets(self, data_samples: Sequence[MultiModalDataSample],
                size: Tuple[int, int], device: torch.device) -> torch.Tensor:
        """(B, H, W) labels: each ``gt_sem_seg`` padded with ``ignore_index`` to ``size``."""
        height, width = size
        targets = []
        for i, sample in enumerate(data_samples):
            if not hasattr(sample, 'gt_sem_seg'):
                raise ValueError(f'{type(self).__name__}: data sample {i} has no gt_sem_seg; '
                                 'pack gt_seg_map in the training pipeline')
            seg = sample.gt_sem_seg.data.reshape(-1, *sample.gt_sem_seg.data.shape[-2:])[0]
            h, w = seg.shape
            if h > height or w > width:
                raise ValueError(f'{type(self).__name__}: the gt_sem_seg of data sample {i} is '
                                 f'{h}x{w}, larger than the input {height}x{width}; resize the '
                                 'segmentation map with the image in the pipeline')
            targets.append(F.pad(seg.long(), (0, width - w, 0, height - h),
                                 value=self.ignore_index))
        return torch.stack(targets).to(device)

    def loss(self, maps: Sequence[torch.Tensor],
             data_samples: Sequence[MultiModalDataSample]) -> Dict[str, torch.Tensor]:
        logits = self.upsampled_logits(maps, data_samples)
        target = self.targets(data_samples, logits.shape[-2:], logits.device)
        return self.loss_by_logits(logits, target)

    def loss_by_logits(self, logits: torch.Tensor, target: torch.Tensor
                       ) -> Dict[str, torch.Tensor]:
        """Losses of (B, C, H, W) logits against (B, H, W) labels."""
        labelled = target != self.ignore_index
        if labelled.any():
            invalid = target[labelled]
            invalid = invalid[(invalid < 0) | (invalid >= self.num_classes)]
            if invalid.numel():
                raise ConfigError(f'{type(self).__name__}: num_classes={self.num_classes} but '
                                  f'the segmentation maps hold labels {invalid.unique().tolist()}'
                                  f' (ignore_index={self.ignore_index}); set num_classes or '
                                  'ignore_index to match the dataset')
            loss_ce = F.cross_entropy(logits, target, weight=self.class_weight,
                                      ignore_index=self.ignore_index)
        else:  # nothing labelled: a zero that keeps the graph
            loss_ce = logits.sum() * 0.0
        losses = dict(loss_ce=loss_ce * self.loss_ce_weight)
        if self.loss_dice_weight > 0:
            losses['loss_dice'] = self.dice(logits, target) * self.loss_dice_weight
        return losses

    # --------------------------------------------------------- prediction
    @torch.no_grad()
    def predict(self, maps: Sequence[torch.Tensor],
                data_samples: Optional[Sequence[MultiModalDataSample]] = None
                ) -> List[MultiModalDataSample]:
        logits = self.upsampled_logits(maps, data_samples)
        if data_samples is None:
            data_samples = [MultiModalDataSample() for _ in range(logits.shape[0])]
        for sample, sample_logits in zip(data_samples, logits):
            img_shape = image_size(sample) or tuple(sample_logits.shape[-2:])
            sample_logits = sample_logits[:, :img_shape[0], :img_shape[1]]
            ori_shape = image_size(sample, 'ori_shape')
            if ori_shape is not None and ori_shape != tuple(sample_logits.shape[-2:]):
                sample_logits = F.interpolate(sample_logits[None], size=ori_shape,
                                              mode='bilinear', align_corners=False)[0]
            sample.pred_sem_seg = PixelData(data=sample_logits.argmax(dim=0, keepdim=True))
        return list(data_samples)
