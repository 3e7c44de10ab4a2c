"""One-stage dense detection head (FCOS) over a fused feature pyramid."""
import math
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmengine.structures import InstanceData
from torch import nn
from torchvision.ops import batched_nms, generalized_box_iou_loss, sigmoid_focal_loss

from mmfusion.errors import ConfigError
from mmfusion.registry import MODELS
from mmfusion.structures import MultiModalDataSample

from ..layers import check_int, check_strides, conv_gn_relu, image_size, norm_groups_for

INF = 1e8


@MODELS.register_module()
class FCOSHead(BaseModule):
    """FCOS: Fully Convolutional One-Stage Object Detection (Tian et al., ICCV 2019).

    Every location of every pyramid level predicts class scores, the
    distances (l, t, r, b) from the location to the four sides of a box and a
    centerness that down-weighs boxes predicted far from an object's centre.
    Two conv towers (``stacked_convs`` x conv3x3-GroupNorm-ReLU, one for
    classification, one for regression) are shared by all levels; a learnable
    scale per level adapts the shared regression to the level's object sizes.
    Includes the FCOS improvements: centerness on the regression branch,
    distances normalised by the stride (``ReLU(s_l * x) * stride``), optional
    centre sampling.

    Location (i, j) of level l sits at ``((j + 0.5) * stride_l, (i + 0.5) *
    stride_l)`` in the (padded) input image. Training targets (the FCOS rules):
    a location is positive for a box if it lies inside the box (or, with
    ``center_sampling``, within ``center_sample_radius * stride_l`` of its
    centre and inside the box) and its largest distance ``max(l, t, r, b)``
    lies in the level's ``regress_ranges``; when several boxes qualify the
    smallest (by area) wins; locations outside the sample's ``img_shape``
    (padding) are always negatives.

    Losses: sigmoid focal loss on the classes (``torchvision.ops.sigmoid_focal_loss``,
    summed over locations and normalised by the number of positives), GIoU loss
    (``torchvision.ops.generalized_box_iou_loss``) on the positives weighted by
    their centerness targets, binary cross-entropy on the centerness.

    Args:
        num_classes: K object classes (no background class; sigmoid scores).
        in_channels: channels of every fused map (filled in by the model).
        feat_channels: channels of the towers (default ``in_channels``).
        stacked_convs: convs per tower.
        strides: stride of each level, finest first; one per input map.
        regress_ranges: (low, high) of ``max(l, t, r, b)`` per level; default
            ``(-1, 8 s_0), (8 s_0, 8 s_1), ..., (8 s_{L-2}, INF)``, which gives
            FCOS's (-1, 64), (64, 128), ... for strides 8, 16, ...
        center_sampling, center_sample_radius: see above.
        norm_on_bbox: distances as ``ReLU(s_l x) * stride_l`` (True; the
            regression bias starts at 1, so every location starts at a box
            one stride out on each side) or ``exp(s_l x)`` (False, the
            original FCOS).
        centerness_on_reg: centerness from the regression tower (True) or
            the classification tower.
        norm_groups: GroupNorm groups (default gcd(32, feat_channels)).
        focal_alpha, focal_gamma: of the focal loss.
        loss_cls_weight, loss_bbox_weight, loss_centerness_weight: loss weights.
        prior_prob: initial foreground probability of the classifier (bias
            ``-log((1 - p) / p)``, as in RetinaNet).
        score_thr: ``predict`` drops candidates whose class probability is below.
        nms_pre: candidates kept per level before NMS (highest scores).
        nms_iou_thr: IoU threshold of the class-wise NMS (``batched_nms``).
        max_per_img: detections kept per image after NMS.

    ``forward(maps)``: maps [Tensor (B, in_channels, H_l, W_l)] -> three
    lists over levels: class logits (B, K, H_l, W_l), distances in pixels
    (B, 4, H_l, W_l), centerness logits (B, 1, H_l, W_l).

    ``loss(maps, data_samples)`` uses ``data_samples[i].gt_instances``
    (``bboxes`` (N, 4) xyxy in input pixels, ``labels`` (N,); N may be 0) and
    ``img_shape``; returns ``dict(loss_cls, loss_bbox, loss_centerness)``.

    ``predict(maps, data_samples, rescale=True)`` sets ``pred_instances``
    (``bboxes`` (K, 4), ``scores`` (K,), ``labels`` (K,)) on each data sample;
    the score is ``sqrt(class probability * centerness)``. With ``rescale``
    boxes are divided by the metainfo ``scale_factor`` (w, h) and clipped to
    ``ori_shape``: original image coordinates.
    """

    def __init__(self, num_classes: int, in_channels: int, feat_channels: Optional[int] = None,
                 stacked_convs: int = 4, strides: Sequence[int] = (8, 16, 32),
                 regress_ranges: Optional[Sequence[Tuple[float, float]]] = None,
                 center_sampling: bool = False, center_sample_radius: float = 1.5,
                 norm_on_bbox: bool = True, centerness_on_reg: bool = True,
                 norm_groups: Optional[int] = None, focal_alpha: float = 0.25,
                 focal_gamma: float = 2.0, loss_cls_weight: float = 1.0,
                 loss_bbox_weight: float = 1.0, loss_centerness_weight: float = 1.0,
                 prior_prob: float = 0.01, score_thr: float = 0.05, nms_pre: int = 1000,
                 nms_iou_thr: float = 0.6, max_per_img: int = 100,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        owner = type(self).__name__
        for arg, value, minimum in (('num_classes', num_classes, 1),
                                    ('in_channels', in_channels, 1),
                                    ('stacked_convs', stacked_convs, 0),
                                    ('nms_pre', nms_pre, 1), ('max_per_img', max_per_img, 1)):
            check_int(owner, arg, value, minimum)
        feat_channels = in_channels if feat_channels is None else feat_channels
        if not isinstance(feat_channels, int) or feat_channels < 1:
            raise ConfigError(f'{owner}: feat_channels must be an integer >= 1, '
                              f'got {feat_channels!r}')
        self.strides = check_strides(owner, strides)
        if regress_ranges is None:
            bounds = [-1.0] + [8.0 * s for s in self.strides[:-1]] + [INF]
            regress_ranges = list(zip(bounds[:-1], bounds[1:]))
        if (len(regress_ranges) != len(self.strides)
                or not all(len(r) == 2 and r[0] < r[1] for r in regress_ranges)):
            raise ConfigError(f'{owner}: regress_ranges must give one (low, high) pair with '
                              f'low < high per stride {self.strides}, got {regress_ranges!r}')
        if not 0 < prior_prob < 1:
            raise ConfigError(f'{owner}: prior_prob must be in (0, 1), got {prior_prob}')
        if not 0 < nms_iou_thr <= 1:
            raise ConfigError(f'{owner}: nms_iou_thr must be in (0, 1], got {nms_iou_thr}')
        if center_sample_radius <= 0:
            raise ConfigError(f'{owner}: center_sample_radius must be > 0, '
                              f'got {center_sample_radius}')
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.feat_channels = feat_channels
        self.regress_ranges = [(float(lo), float(hi)) for lo, hi in regress_ranges]
        self.center_sampling = bool(center_sampling)
        self.center_sample_radius = float(center_sample_radius)
        self.norm_on_bbox = bool(norm_on_bbox)
        self.centerness_on_reg = bool(centerness_on_reg)
        self.focal_alpha = focal_alpha
        self.focal_gamma = focal_gamma
        self.loss_weights = dict(loss_cls=loss_cls_weight, loss_bbox=loss_bbox_weight,
                                 loss_centerness=loss_centerness_weight)
        self.score_thr = score_thr
        self.nms_pre = nms_pre
        self.nms_iou_thr = nms_iou_thr
        self.max_per_img = max_per_img

        groups = norm_groups_for(owner, feat_channels, norm_groups)
        self.cls_convs = self._tower(in_channels, feat_channels, stacked_convs, groups)
        self.reg_convs = self._tower(in_channels, feat_channels, stacked_convs, groups)
        tower_out = feat_channels if stacked_convs else in_channels
        self.conv_cls = nn.Conv2d(tower_out, num_classes, 3, padding=1)
        self.conv_reg = nn.Conv2d(tower_out, 4, 3, padding=1)
        self.conv_centerness = nn.Conv2d(tower_out, 1, 3, padding=1)
        self.scales = nn.Parameter(torch.ones(len(self.strides)))
        self._init_weights(prior_prob)

    @staticmethod
    def _tower(in_channels: int, channels: int, num_convs: int, groups: int) -> nn.Sequential:
        return nn.Sequential(*[conv_gn_relu(in_channels if i == 0 else channels, channels, groups)
                               for i in range(num_convs)])

    def _init_weights(self, prior_prob: float) -> None:
        # FCOS/RetinaNet initialisation: N(0, 0.01) convs, a classifier bias
        # giving every location foreground probability prior_prob, so the
        # many easy negatives do not swamp the first iterations.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.01)
                if m.bias is not None:
                    nn.init.constant_(m.bias, 0.0)
        nn.init.constant_(self.conv_cls.bias, -math.log((1 - prior_prob) / prior_prob))
        if self.norm_on_bbox:
            # A distance whose ReLU input starts negative at every positive
            # location never gets a gradient (seen with narrow towers); a bias
            # of 1 starts every location at a box reaching one stride out.
            nn.init.constant_(self.conv_reg.bias, 1.0)

    # ------------------------------------------------------------ forward
    def forward(self, maps: Sequence[torch.Tensor]
                ) -> Tuple[List[torch.Tensor], List[torch.Tensor], List[torch.Tensor]]:
        if len(maps) != len(self.strides):
            raise ConfigError(f'{type(self).__name__}: strides={self.strides} describe '
                              f'{len(self.strides)} levels but got {len(maps)} maps; give one '
                              'stride per pyramid level')
        cls_scores, bbox_preds, centernesses = [], [], []
        for level, x in enumerate(maps):
            if x.ndim != 4 or x.shape[1] != self.in_channels:
                raise ConfigError(f'{type(self).__name__}: in_channels={self.in_channels} but '
                                  f'level {level} has shape {tuple(x.shape)}')
            cls_feat = self.cls_convs(x)
            reg_feat = self.reg_convs(x)
            raw = self.scales[level] * self.conv_reg(reg_feat)
            if self.norm_on_bbox:
                distances = F.relu(raw) * self.strides[level]
            else:
                distances = raw.clamp(max=math.log(INF)).exp()
            cls_scores.append(self.conv_cls(cls_feat))
            bbox_preds.append(distances)
            centernesses.append(self.conv_centerness(reg_feat if self.centerness_on_reg
                                                     else cls_feat))
        return cls_scores, bbox_preds, centernesses

    def points(self, sizes: Sequence[Tuple[int, int]], device: torch.device) -> List[torch.Tensor]:
        """Location centres per level: [(H_l * W_l, 2) as (x, y)], row-major like ``flatten``."""
        points = []
        for (h, w), stride in zip(sizes, self.strides):
            ys = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) * stride
            xs = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) * stride
            yy, xx = torch.meshgrid(ys, xs, indexing='ij')
            points.append(torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1))
        return points

    # ------------------------------------------------------------ targets
    def assign(self, points: Sequence[torch.Tensor], gt_bboxes: torch.Tensor,
               gt_labels: torch.Tensor, img_shape: Optional[Tuple[int, int]] = None
               ) -> Tuple[torch.Tensor, torch.Tensor]:
        """FCOS targets of one image.

        Args:
            points: location centres per level [(P_l, 2)] (from :meth:`points`).
            gt_bboxes: (N, 4) xyxy boxes in input pixels; N may be 0.
            gt_labels: (N,) classes in [0, num_classes).
            img_shape: (h, w) of the image inside the padded input; locations
                outside it get no positives. ``None``: the whole input.

        Returns:
            labels (P,): the assigned box's class, ``num_classes`` for background;
            bbox_targets (P, 4): distances (l, t, r, b) to the assigned box
            (meaningless for background), P = sum of P_l.
        """
        all_points = torch.cat(list(points))
        num_points = all_points.shape[0]
        labels = all_points.new_full((num_points,), self.num_classes, dtype=torch.long)
        if gt_bboxes.numel() == 0:
            return labels, all_points.new_zeros((num_points, 4))
        gt_bboxes = gt_bboxes.to(all_points)
        ranges = torch.cat([all_points.new_tensor(r).expand(len(p), 2)
                            for r, p in zip(self.regress_ranges, points)])
        strides = torch.cat([all_points.new_full((len(p),), float(s))
                             for s, p in zip(self.strides, points)])
        x, y = all_points[:, 0:1], all_points[:, 1:2]  # (P, 1)
        x1, y1, x2, y2 = gt_bboxes.unbind(dim=1)  # (N,) each
        ltrb = torch.stack([x - x1, y - y1, x2 - x, y2 - y], dim=-1)  # (P, N, 4)

        if self.center_sampling:
            radius = (strides * self.center_sample_radius).unsqueeze(1)  # (P, 1)
            cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
            region = torch.stack([x - torch.maximum(cx - radius, x1),
                                  y - torch.maximum(cy - radius, y1),
                                  torch.minimum(cx + radius, x2) - x,
                                  torch.minimum(cy + radius, y2) - y], dim=-1)
            inside = region.min(dim=-1).values > 0
        else:
            inside = ltrb.min(dim=-1).values > 0
        max_dist = ltrb.max(dim=-1).values
        in_range = (max_dist >= ranges[:, 0:1]) & (max_dist <= ranges[:, 1:2])
        areas = ((x2 - x1) * (y2 - y1)).unsqueeze(0).repeat(num_points, 1)  # (P, N)
        areas[~(inside & in_range)] = INF
        if img_shape is not None:
            h, w = img_shape
            outside = (all_points[:, 0] >= w) | (all_points[:, 1] >= h)
            areas[outside] = INF
        min_area, index = areas.min(dim=1)
        labels = gt_labels.to(labels.device)[index]
        labels[min_area >= INF] = self.num_classes
        return labels, ltrb[torch.arange(num_points, device=ltrb.device), index]

    @staticmethod
    def centerness_target(ltrb: torch.Tensor) -> torch.Tensor:
        """``sqrt(min(l, r) / max(l, r) * min(t, b) / max(t, b))`` of (P, 4) distances."""
        lr, tb = ltrb[:, [0, 2]], ltrb[:, [1, 3]]
        ratio = (lr.min(dim=1).values / lr.max(dim=1).values.clamp(min=1e-6)
                 * tb.min(dim=1).values / tb.max(dim=1).values.clamp(min=1e-6))
        return ratio.clamp(min=0).sqrt()

    @staticmethod
    def distance_to_box(points: torch.Tensor, ltrb: torch.Tensor) -> torch.Tensor:
        """(P, 2) points and (P, 4) distances -> (P, 4) xyxy boxes."""
        return torch.cat([points - ltrb[:, :2], points + ltrb[:, 2:]], dim=1)

    def _gt(self, sample: MultiModalDataSample, index: int) -> Tuple[torch.Tensor, torch.Tensor]:
        if not hasattr(sample, 'gt_instances'):
            raise ValueError(f'{type(self).__name__}: data sample {index} has no gt_instances; '
                             'pack gt_bboxes and gt_bboxes_labels in the training pipeline')
        bboxes = sample.gt_instances.bboxes.reshape(-1, 4)
        labels = sample.gt_instances.labels.reshape(-1).long()
        if labels.numel() and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise ConfigError(f'{type(self).__name__}: num_classes={self.num_classes} but data '
                              f'sample {index} has labels {labels.tolist()}; set num_classes '
                              "to the dataset's number of classes")
        return bboxes, labels

    @staticmethod
    def _flatten(preds: Sequence[torch.Tensor]) -> torch.Tensor:
        """[(B, C, H_l, W_l)] -> (B, sum_l H_l W_l, C), the order of :meth:`points`."""
        return torch.cat([p.flatten(2).transpose(1, 2) for p in preds], dim=1)

    # ------------------------------------------------------------- losses
    def loss(self, maps: Sequence[torch.Tensor],
             data_samples: Sequence[MultiModalDataSample]) -> Dict[str, torch.Tensor]:
        cls_scores, bbox_preds, centernesses = self(maps)
        return self.loss_by_feat(cls_scores, bbox_preds, centernesses, data_samples)

    def loss_by_feat(self, cls_scores: List[torch.Tensor], bbox_preds: List[torch.Tensor],
                     centernesses: List[torch.Tensor],
                     data_samples: Sequence[MultiModalDataSample]) -> Dict[str, torch.Tensor]:
        """The three losses from the outputs of :meth:`forward`."""
        points = self.points([p.shape[-2:] for p in cls_scores], cls_scores[0].device)
        targets = [self.assign(points, *self._gt(sample, i), image_size(sample))
                   for i, sample in enumerate(data_samples)]
        labels = torch.cat([t[0] for t in targets])  # (B * P,)
        bbox_targets = torch.cat([t[1] for t in targets])  # (B * P, 4)
        flat_cls = self._flatten(cls_scores).reshape(-1, self.num_classes)
        flat_bbox = self._flatten(bbox_preds).reshape(-1, 4)
        flat_ctr = self._flatten(centernesses).reshape(-1)
        flat_points = torch.cat(points).repeat(len(data_samples), 1)

        positive = labels < self.num_classes
        num_pos = max(int(positive.sum()), 1)
        onehot = torch.zeros_like(flat_cls)
        onehot[positive, labels[positive]] = 1.0
        loss_cls = sigmoid_focal_loss(flat_cls, onehot, alpha=self.focal_alpha,
                                      gamma=self.focal_gamma, reduction='sum') / num_pos
        if positive.any():
            pos_points = flat_points[positive]
            pos_targets = bbox_targets[positive]
            ctr_targets = self.centerness_target(pos_targets)
            giou = generalized_box_iou_loss(self.distance_to_box(pos_points, flat_bbox[positive]),
                                            self.distance_to_box(pos_points, pos_targets),
                                            reduction='none')
            loss_bbox = (giou * ctr_targets).sum() / ctr_targets.sum().clamp(min=1e-6)
            loss_ctr = F.binary_cross_entropy_with_logits(
                flat_ctr[positive], ctr_targets, reduction='sum') / num_pos
        else:
            # no object in the batch: zero losses that keep every branch in the graph
            loss_bbox = flat_bbox.sum() * 0.0
            loss_ctr = flat_ctr.sum() * 0.0
        losses = dict(loss_cls=loss_cls, loss_bbox=loss_bbox, loss_centerness=loss_ctr)
        return {k: v * self.loss_weights[k] for k, v in losses.items()}

    # --------------------------------------------------------- prediction
    def predict(self, maps: Sequence[torch.Tensor],
                data_samples: Optional[Sequence[MultiModalDataSample]] = None,
                rescale: bool = True) -> List[MultiModalDataSample]:
        cls_scores, bbox_preds, centernesses = self(maps)
        return self.predict_by_feat(cls_scores, bbox_preds, centernesses, data_samples,
                                    rescale=rescale)

    @torch.no_grad()
    def predict_by_feat(self, cls_scores: List[torch.Tensor], bbox_preds: List[torch.Tensor],
                        centernesses: List[torch.Tensor],
                        data_samples: Optional[Sequence[MultiModalDataSample]] = None,
                        rescale: bool = True) -> List[MultiModalDataSample]:
        """Detections from the outputs of :meth:`forward`; see the class docstring."""
        batch = cls_scores[0].shape[0]
        if data_samples is None:
            data_samples = [MultiModalDataSample() for _ in range(batch)]
        points = self.points([p.shape[-2:] for p in cls_scores], cls_scores[0].device)
        for i, sample in enumerate(data_samples):
            sample.pred_instances = self._detect_one(
                [c[i] for c in cls_scores], [b[i] for b in bbox_preds],
                [c[i] for c in centernesses], points, sample, rescale)
        return list(data_samples)

    def _detect_one(self, cls_scores, bbox_preds, centernesses, points,
                    sample: MultiModalDataSample, rescale: bool) -> InstanceData:
        img_shape = image_size(sample)
        boxes, scores, labels = [], [], []
        for cls, dist, ctr, pts in zip(cls_scores, bbox_preds, centernesses, points):
            probs = cls.flatten(1).t().sigmoid()  # (P_l, K)
            if img_shape is not None:  # padding holds no objects
                inside = (pts[:, 0] < img_shape[1]) & (pts[:, 1] < img_shape[0])
                probs = probs * inside.unsqueeze(1)
            point_idx, class_idx = (probs > self.score_thr).nonzero(as_tuple=True)
            level_scores = probs[point_idx, class_idx]
            if level_scores.numel() > self.nms_pre:
                level_scores, keep = level_scores.topk(self.nms_pre)
                point_idx, class_idx = point_idx[keep], class_idx[keep]
            level_ctr = ctr.reshape(-1)[point_idx].sigmoid()
            boxes.append(self.distance_to_box(pts[point_idx], dist.flatten(1).t()[point_idx]))
            scores.append((level_scores * level_ctr).sqrt())
            labels.append(class_idx)
        boxes, scores, labels = torch.cat(boxes), torch.cat(scores), torch.cat(labels)
        if img_shape is not None:
            boxes = self._clip(boxes, img_shape)
        if rescale:
            scale = sample.metainfo.get('scale_factor')
            if isinstance(scale, (int, float)):
                scale = (scale, scale)
            if scale is not None:
                boxes = boxes / boxes.new_tensor([scale[0], scale[1], scale[0], scale[1]])
            ori_shape = image_size(sample, 'ori_shape')
            if ori_shape is not None:
                boxes = self._clip(boxes, ori_shape)
        keep = batched_nms(boxes, scores, labels, self.nms_iou_thr)[:self.max_per_img]
        result = InstanceData()
        result.bboxes = boxes[keep]
        result.scores = scores[keep]
        result.labels = labels[keep]
        return result

    @staticmethod
    def _clip(boxes: torch.Tensor, shape: Tuple[int, int]) -> torch.Tensor:
        h, w = shape
        return torch.stack([boxes[:, 0].clamp(0, w), boxes[:, 1].clamp(0, h),
                            boxes[:, 2].clamp(0, w), boxes[:, 3].clamp(0, h)], dim=1)
