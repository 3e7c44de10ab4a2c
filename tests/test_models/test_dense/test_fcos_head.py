"""Tests of FCOSHead: target assignment, losses, post-processing, a tiny overfit."""
import math

import pytest
import torch
from mmengine.structures import InstanceData
from torch import nn
from torchvision.ops import box_iou

import mmfusion.models  # noqa: F401  (registers the modules)
from mmfusion.errors import ConfigError
from mmfusion.models.heads.dense_det_head import INF
from mmfusion.models.necks import FPN
from mmfusion.registry import MODELS
from mmfusion.structures import MultiModalDataSample


def make_head(**kwargs):
    cfg = dict(type='FCOSHead', num_classes=3, in_channels=8, stacked_convs=1, strides=(8, 16))
    cfg.update(kwargs)
    return MODELS.build(cfg)


def sample(boxes, labels, img_shape=(32, 32), **meta) -> MultiModalDataSample:
    s = MultiModalDataSample()
    s.gt_instances = InstanceData(bboxes=torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                                  labels=torch.tensor(labels, dtype=torch.long))
    s.set_metainfo(dict(img_shape=img_shape, **meta))
    return s


# ------------------------------------------------------------- assignment


def test_points_are_location_centres_in_row_major_order():
    head = make_head()
    level0, level1 = head.points([(2, 3), (1, 2)], torch.device('cpu'))
    assert level0.tolist() == [[4, 4], [12, 4], [20, 4], [4, 12], [12, 12], [20, 12]]
    assert level1.tolist() == [[8, 8], [24, 8]]


def test_default_regress_ranges_are_fcos_ranges():
    head = MODELS.build(dict(type='FCOSHead', num_classes=2, in_channels=8, strides=(8, 16, 32)))
    assert head.regress_ranges == [(-1, 64), (64, 128), (128, INF)]


def test_assignment_follows_the_fcos_rules():
    """Input 32x32, strides 8 and 16 (4x4 and 2x2 locations), ranges (-1, 16]
    and [16, inf): box A (label 1) is small enough for level 0, box B
    (label 2) needs level 1."""
    head = make_head(regress_ranges=((-1, 16), (16, INF)))
    points = head.points([(4, 4), (2, 2)], torch.device('cpu'))
    boxes = torch.tensor([[0., 0., 20., 20.], [0., 0., 32., 32.]])
    labels, targets = head.assign(points, boxes, torch.tensor([1, 2]))
    assert labels.shape == (20,) and targets.shape == (20, 4)
    # level 0: (12, 12) lies in A with max distance 12 <= 16; in B it would be 20
    assert labels[5] == 1 and targets[5].tolist() == [12, 12, 8, 8]
    # (4, 4): max distance to A exactly 16, the range's upper end
    assert labels[0] == 1 and targets[0].tolist() == [4, 4, 16, 16]
    # (20, 4) is on A's right edge (not inside) and too far inside B for level 0
    assert labels[2] == 3
    assert labels[15] == 3  # (28, 28)
    assert (labels[:16] != 2).all()
    # level 1: (8, 8) is in A too, but its max distance 12 is below [16, inf)
    assert labels[16] == 2 and targets[16].tolist() == [8, 8, 24, 24]
    assert labels[17] == 2 and targets[17].tolist() == [24, 8, 8, 24]
    assert labels[19] == 2 and targets[19].tolist() == [24, 24, 8, 8]
    assert (labels == 1).sum() == 4 and (labels == 2).sum() == 4


@pytest.mark.parametrize('order', [(0, 1), (1, 0)])
def test_an_ambiguous_location_gets_the_smallest_box(order):
    head = make_head(strides=(8,), regress_ranges=((-1, INF),))
    points = head.points([(4, 4)], torch.device('cpu'))
    boxes = torch.tensor([[0., 0., 32., 32.], [8., 8., 24., 24.]])[list(order)]
    labels_in = torch.tensor([0, 2])[list(order)]
    labels, targets = head.assign(points, boxes, labels_in)
    assert labels[5] == 2 and targets[5].tolist() == [4, 4, 12, 12]  # (12, 12): in both
    assert labels[0] == 0 and targets[0].tolist() == [4, 4, 28, 28]  # (4, 4): only the large


def test_locations_outside_img_shape_get_no_positives():
    head = make_head(strides=(8,), regress_ranges=((-1, INF),))
    points = head.points([(4, 4)], torch.device('cpu'))
    box = torch.tensor([[0., 0., 32., 32.]])
    labels, _ = head.assign(points, box, torch.tensor([1]), img_shape=(16, 24))
    grid = labels.reshape(4, 4)
    assert (grid[:2, :3] == 1).all()  # y < 16 and x < 24
    assert (grid[2:] == 3).all() and (grid[:, 3] == 3).all()


def test_center_sampling_keeps_locations_near_the_centre():
    box, label = torch.tensor([[0., 0., 32., 32.]]), torch.tensor([0])
    head = make_head(strides=(8,), regress_ranges=((-1, INF),), center_sampling=True,
                     center_sample_radius=1.0)
    points = head.points([(4, 4)], torch.device('cpu'))
    labels, _ = head.assign(points, box, label)
    expected = torch.full((4, 4), 3)
    expected[1:3, 1:3] = 0  # within 8 px (radius 1 x stride 8) of the centre (16, 16)
    assert torch.equal(labels.reshape(4, 4), expected)
    plain, _ = make_head(strides=(8,), regress_ranges=((-1, INF),)).assign(points, box, label)
    assert (plain == 0).all()


def test_an_image_without_boxes_has_only_negatives():
    head = make_head()
    points = head.points([(4, 4), (2, 2)], torch.device('cpu'))
    labels, targets = head.assign(points, torch.zeros(0, 4), torch.zeros(0, dtype=torch.long))
    assert (labels == 3).all() and targets.shape == (20, 4)


def test_centerness_target():
    ltrb = torch.tensor([[4., 4., 4., 4.], [2., 3., 8., 6.]])
    expected = torch.tensor([1.0, math.sqrt(2 / 8 * 3 / 6)])
    torch.testing.assert_close(make_head().centerness_target(ltrb), expected)


# ----------------------------------------------------------------- losses


def fused_maps(batch: int = 2, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, 8, 4, 4, generator=g), torch.randn(batch, 8, 2, 2, generator=g)]


@pytest.mark.parametrize('variant', [
    dict(),
    dict(norm_on_bbox=False, centerness_on_reg=False, stacked_convs=0),
    dict(center_sampling=True, stacked_convs=2, feat_channels=4),
], ids=['fcos-imprv', 'original', 'center-sampling'])
def test_loss_is_finite_with_and_without_boxes(variant):
    torch.manual_seed(0)
    head = make_head(**variant)
    with_boxes = [sample([[2, 2, 14, 18], [4, 6, 30, 30]], [0, 2]), sample([], [])]
    losses = head.loss(fused_maps(), with_boxes)
    assert set(losses) == {'loss_cls', 'loss_bbox', 'loss_centerness'}
    assert all(torch.isfinite(v) and v > 0 for v in losses.values())
    sum(losses.values()).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in head.parameters())

    head.zero_grad()
    losses = head.loss(fused_maps(), [sample([], []), sample([], [])])
    assert torch.isfinite(losses['loss_cls']) and losses['loss_cls'] > 0
    assert losses['loss_bbox'] == 0 and losses['loss_centerness'] == 0
    sum(losses.values()).backward()  # the zero losses keep the graph
    assert head.conv_cls.weight.grad.abs().sum() > 0


def test_loss_weights_scale_each_term():
    torch.manual_seed(0)
    head = make_head()
    samples = [sample([[2, 2, 14, 18]], [1]), sample([[4, 6, 30, 30]], [0])]
    base = head.loss(fused_maps(), samples)
    head.loss_weights = dict(loss_cls=2.0, loss_bbox=0.5, loss_centerness=0.0)
    scaled = head.loss(fused_maps(), samples)
    torch.testing.assert_close(scaled['loss_cls'], 2 * base['loss_cls'])
    torch.testing.assert_close(scaled['loss_bbox'], 0.5 * base['loss_bbox'])
    assert scaled['loss_centerness'] == 0


def test_labels_outside_num_classes_are_config_errors():
    with pytest.raises(ConfigError, match='num_classes=3 but data sample 1 has labels'):
        make_head().loss(fused_maps(), [sample([], []), sample([[0, 0, 8, 8]], [3])])


@pytest.mark.parametrize('kwargs, match', [
    (dict(num_classes=0), 'num_classes'),
    (dict(strides=(16, 8)), 'strides'),
    (dict(strides=()), 'strides'),
    (dict(regress_ranges=((-1, 64),)), 'regress_ranges'),
    (dict(feat_channels=12, norm_groups=5), 'norm_groups=5'),
    (dict(nms_iou_thr=0.0), 'nms_iou_thr'),
])
def test_bad_arguments_are_config_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        make_head(**kwargs)


def test_a_pyramid_with_another_number_of_levels_is_a_config_error():
    with pytest.raises(ConfigError, match='describe 2 levels but got 1 maps'):
        make_head()(fused_maps()[:1])


# ------------------------------------------------------------- prediction


def hand_made_outputs():
    """Outputs of a 1-level head (stride 8) on a 32x32 input with two confident
    locations: (x=20, y=12), class 1, distances (8, 4, 4, 8) -> box
    [12, 8, 24, 20]; and (28, 28), class 0, distances (4, 4, 20, 20) -> box
    [24, 24, 48, 48], which leaves the 32x32 image."""
    cls = torch.full((1, 2, 4, 4), -10.0)
    bbox = torch.full((1, 4, 4, 4), 4.0)
    ctr = torch.full((1, 1, 4, 4), 10.0)
    cls[0, 1, 1, 2] = 10.0
    bbox[0, :, 1, 2] = torch.tensor([8.0, 4.0, 4.0, 8.0])
    cls[0, 0, 3, 3] = 10.0
    bbox[0, :, 3, 3] = torch.tensor([4.0, 4.0, 20.0, 20.0])
    return [cls], [bbox], [ctr]


def test_predict_rescales_boxes_by_scale_factor_and_clips_them():
    head = make_head(num_classes=2, strides=(8,))
    # the 32x32 input was resized from a 64 (h) x 16 (w) original: w x2, h x0.5
    meta = dict(img_shape=(32, 32), ori_shape=(64, 16), scale_factor=(2.0, 0.5))
    [pred] = head.predict_by_feat(*hand_made_outputs(), [MultiModalDataSample(metainfo=meta)])
    det = pred.pred_instances
    order = det.scores.argsort(descending=True)
    assert len(det) == 2
    torch.testing.assert_close(det.bboxes[order], torch.tensor([[6., 16., 12., 40.],
                                                                [12., 48., 16., 64.]]))
    assert det.labels[order].tolist() == [1, 0]
    torch.testing.assert_close(det.scores, torch.sigmoid(torch.tensor(10.0)).expand(2))

    [raw] = head.predict_by_feat(*hand_made_outputs(), [MultiModalDataSample(metainfo=meta)],
                                 rescale=False)
    boxes = raw.pred_instances.bboxes[raw.pred_instances.scores.argsort(descending=True)]
    torch.testing.assert_close(boxes, torch.tensor([[12., 8., 24., 20.], [24., 24., 32., 32.]]))


def test_predict_ignores_locations_in_the_padding_and_low_scores():
    head = make_head(num_classes=2, strides=(8,))
    meta = dict(img_shape=(32, 24), ori_shape=(32, 24), scale_factor=(1.0, 1.0))
    [pred] = head.predict_by_feat(*hand_made_outputs(), [MultiModalDataSample(metainfo=meta)])
    # (28, 28) lies right of x = 24, in the padding
    assert pred.pred_instances.labels.tolist() == [1]
    head.score_thr = 0.99999
    [pred] = head.predict_by_feat(*hand_made_outputs(), [MultiModalDataSample(metainfo=meta)])
    assert len(pred.pred_instances) == 0
    assert pred.pred_instances.bboxes.shape == (0, 4)


def test_predict_applies_class_wise_nms_and_max_per_img():
    head = make_head(num_classes=2, strides=(8,))
    [cls], [bbox], [ctr] = hand_made_outputs()
    # (12, 12) predicts the box of (20, 12), [12, 8, 24, 20], as class 1 with a
    # lower score (suppressed) and as class 0 (another class: kept)
    cls[0, 1, 1, 1] = 9.0
    cls[0, 0, 1, 1] = 8.0
    bbox[0, :, 1, 1] = torch.tensor([0.0, 4.0, 12.0, 8.0])
    meta = dict(img_shape=(32, 32))
    [pred] = head.predict_by_feat([cls], [bbox], [ctr], [MultiModalDataSample(metainfo=meta)])
    det = pred.pred_instances
    assert sorted(det.labels.tolist()) == [0, 0, 1]
    same_box = (det.bboxes == torch.tensor([12., 8., 24., 20.])).all(dim=1)
    assert sorted(det.labels[same_box].tolist()) == [0, 1]
    head.max_per_img = 1
    [pred] = head.predict_by_feat([cls], [bbox], [ctr], [MultiModalDataSample(metainfo=meta)])
    assert pred.pred_instances.labels.tolist() == [1]
    torch.testing.assert_close(pred.pred_instances.scores,
                               torch.sigmoid(torch.tensor([10.0])))


# ---------------------------------------------------------------- overfit


class TinyBackbone(nn.Module):
    """Five stride-2 convs; maps of strides 8, 16, 32."""

    def __init__(self) -> None:
        super().__init__()

        def stage(i, o):
            return nn.Sequential(nn.Conv2d(i, o, 3, 2, 1), nn.ReLU())

        self.stem = nn.Sequential(stage(3, 8), stage(8, 16), stage(16, 16))
        self.c4, self.c5 = stage(16, 16), stage(16, 16)

    def forward(self, x):
        c3 = self.stem(x)
        c4 = self.c4(c3)
        return [c3, c4, self.c5(c4)]


def test_a_tiny_fcos_overfits_one_image_with_two_boxes():
    torch.manual_seed(0)
    image = torch.zeros(1, 3, 64, 64)
    image[0, 0, 8:28, 8:32] = 1.0  # a red box, class 0
    image[0, 2, 30:58, 36:60] = 1.0  # a blue box, class 2
    gt = sample([[8, 8, 32, 28], [36, 30, 60, 58]], [0, 2], img_shape=(64, 64),
                ori_shape=(64, 64), scale_factor=(1.0, 1.0))
    backbone, neck = TinyBackbone(), FPN([16, 16, 16], 16)
    head = MODELS.build(dict(type='FCOSHead', num_classes=3, in_channels=16, stacked_convs=2,
                             strides=(8, 16, 32)))
    modules = nn.ModuleList([backbone, neck, head])
    optimizer = torch.optim.Adam(modules.parameters(), lr=3e-3)
    for _ in range(300):
        losses = head.loss(neck(backbone(image)), [gt])
        optimizer.zero_grad()
        sum(losses.values()).backward()
        optimizer.step()
    assert losses['loss_bbox'] < 0.2
    modules.eval()
    with torch.no_grad():
        [pred] = head.predict(neck(backbone(image)), [gt])
    det = pred.pred_instances
    top = det.scores.argsort(descending=True)[:2]
    iou = box_iou(det.bboxes[top], gt.gt_instances.bboxes)
    best = iou.argmax(dim=1)
    assert sorted(best.tolist()) == [0, 1]  # one detection per object
    assert (iou.max(dim=1).values > 0.5).all()
    assert torch.equal(det.labels[top], gt.gt_instances.labels[best])
