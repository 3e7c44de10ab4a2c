"""Tests of FPNSegHead: shapes, ignore_index, padding and resizing, a tiny overfit."""
import pytest
import torch
import torch.nn.functional as F
from mmengine.structures import PixelData
from torch import nn

import mmfusion.models  # noqa: F401  (registers the modules)
from mmfusion.errors import ConfigError
from mmfusion.models.necks import FPN
from mmfusion.registry import MODELS
from mmfusion.structures import MultiModalDataSample

SIZES = [(8, 8), (4, 4), (2, 2)]  # strides 4, 8, 16 of a 32x32 input


def make_head(**kwargs):
    cfg = dict(type='FPNSegHead', num_classes=3, in_channels=8, channels=8, strides=(4, 8, 16))
    cfg.update(kwargs)
    return MODELS.build(cfg)


def fused_maps(batch: int = 2, sizes=SIZES, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, 8, h, w, generator=g) for h, w in sizes]


def seg_sample(seg: torch.Tensor, **meta) -> MultiModalDataSample:
    s = MultiModalDataSample()
    s.gt_sem_seg = PixelData(data=seg[None].long())
    s.set_metainfo(meta)
    return s


def random_seg(h: int, w: int, seed: int = 0, num_classes: int = 3) -> torch.Tensor:
    return torch.randint(0, num_classes, (h, w), generator=torch.Generator().manual_seed(seed))


def test_logits_at_the_finest_level_and_every_parameter_learns():
    torch.manual_seed(0)
    head = make_head()
    logits = head(fused_maps())
    assert logits.shape == (2, 3, 8, 8)
    losses = head.loss(fused_maps(), [seg_sample(random_seg(32, 32, s)) for s in (0, 1)])
    assert set(losses) == {'loss_ce'} and torch.isfinite(losses['loss_ce'])
    losses['loss_ce'].backward()
    for name, p in head.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_odd_sizes_reach_the_finest_level_exactly():
    head = make_head()
    logits = head(fused_maps(sizes=[(9, 7), (5, 4), (3, 2)]))
    assert logits.shape == (2, 3, 9, 7)


def test_loss_with_dice_is_the_weighted_sum_of_both_terms():
    torch.manual_seed(0)
    head = make_head(loss_ce_weight=0.5, loss_dice_weight=2.0).eval()
    samples = [seg_sample(random_seg(32, 32, s)) for s in (0, 1)]
    losses = head.loss(fused_maps(), samples)
    logits = F.interpolate(head(fused_maps()), size=(32, 32), mode='bilinear')
    target = torch.stack([s.gt_sem_seg.data[0] for s in samples])
    torch.testing.assert_close(losses['loss_ce'], 0.5 * F.cross_entropy(logits, target))
    dice = MODELS.build(dict(type='DiceLoss'))(logits, target)
    torch.testing.assert_close(losses['loss_dice'], 2.0 * dice)


def test_pixels_labelled_ignore_index_do_not_change_the_loss():
    head = make_head(loss_dice_weight=1.0)
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 6, 5, generator=g)
    target = random_seg(6, 5).expand(2, 6, 5).clone()
    target[:, :, -1] = 255  # the last column is not labelled
    with_ignored = head.loss_by_logits(logits, target)
    without = head.loss_by_logits(logits[..., :-1], target[..., :-1])
    for key in ('loss_ce', 'loss_dice'):
        torch.testing.assert_close(with_ignored[key], without[key])
    # whatever the logits there
    logits[..., -1] = 100.0
    for key in ('loss_ce', 'loss_dice'):
        torch.testing.assert_close(head.loss_by_logits(logits, target)[key], without[key])


def test_a_map_without_labelled_pixels_gives_zero_loss_and_a_graph():
    head = make_head()
    logits = torch.randn(1, 3, 4, 4, requires_grad=True)
    loss = head.loss_by_logits(logits, torch.full((1, 4, 4), 255))['loss_ce']
    assert loss == 0
    loss.backward()
    assert logits.grad is not None


def test_padding_of_a_smaller_image_is_ignored():
    """A 24x20 image padded to the 32x32 batch: the loss is over its 24x20 region."""
    torch.manual_seed(0)
    head = make_head().eval()
    seg = random_seg(24, 20)
    loss = head.loss(fused_maps(batch=1), [seg_sample(seg, img_shape=(24, 20))])['loss_ce']
    logits = F.interpolate(head(fused_maps(batch=1)), size=(32, 32), mode='bilinear')
    torch.testing.assert_close(loss, F.cross_entropy(logits[..., :24, :20], seg[None]))
    with pytest.raises(ValueError, match='larger than the input 32x32'):
        head.loss(fused_maps(batch=1), [seg_sample(random_seg(40, 20))])


def test_batch_input_shape_sets_the_input_size():
    torch.manual_seed(0)
    head = make_head().eval()
    seg = random_seg(30, 30)
    sample = seg_sample(seg, batch_input_shape=(30, 30))
    loss = head.loss(fused_maps(batch=1), [sample])['loss_ce']
    logits = F.interpolate(head(fused_maps(batch=1)), size=(30, 30), mode='bilinear')
    torch.testing.assert_close(loss, F.cross_entropy(logits, seg[None]))


def test_predict_crops_the_padding_then_resizes_to_the_original_size():
    torch.manual_seed(0)
    head = make_head().eval()
    meta = dict(img_shape=(24, 20), ori_shape=(48, 40))
    [pred] = head.predict(fused_maps(batch=1), [MultiModalDataSample(metainfo=meta)])
    seg = pred.pred_sem_seg.data
    assert seg.shape == (1, 48, 40) and seg.dtype == torch.long
    logits = F.interpolate(head(fused_maps(batch=1)), size=(32, 32), mode='bilinear')
    cropped = F.interpolate(logits[..., :24, :20], size=(48, 40), mode='bilinear')
    assert torch.equal(seg, cropped.argmax(dim=1))
    uncropped = F.interpolate(logits, size=(48, 40), mode='bilinear').argmax(dim=1)
    assert not torch.equal(seg, uncropped)  # the crop matters
    [same] = head.predict(fused_maps(batch=1),
                          [MultiModalDataSample(metainfo=dict(img_shape=(32, 32)))])
    assert torch.equal(same.pred_sem_seg.data, logits.argmax(dim=1))


@pytest.mark.parametrize('kwargs, match', [
    (dict(num_classes=1), 'num_classes=2'),
    (dict(strides=(4, 12)), 'power-of-two'),
    (dict(channels=12, norm_groups=5), 'norm_groups=5'),
    (dict(loss_ce_weight=0.0), 'not both 0'),
    (dict(class_weight=[1.0, 2.0]), 'class_weight'),
    (dict(dropout=1.0), 'dropout'),
])
def test_bad_arguments_are_config_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        make_head(**kwargs)


def test_labels_outside_num_classes_and_wrong_levels_are_config_errors():
    head = make_head()
    with pytest.raises(ConfigError, match=r'num_classes=3 but the segmentation maps hold '
                                          r'labels \[7\]'):
        head.loss_by_logits(torch.zeros(1, 3, 2, 2), torch.tensor([[[0, 1], [2, 7]]]))
    with pytest.raises(ConfigError, match='describe 3 levels but got 2 maps'):
        head(fused_maps()[:2])


def test_a_tiny_segmentor_overfits_one_image():
    torch.manual_seed(0)
    image = torch.zeros(1, 3, 32, 32)
    seg = torch.zeros(32, 32, dtype=torch.long)
    image[0, 0, 4:14, 4:20] = 1.0
    seg[4:14, 4:20] = 1
    image[0, 1, 18:30, 12:28] = 1.0
    seg[18:30, 12:28] = 2

    def stage(i, o):
        return nn.Sequential(nn.Conv2d(i, o, 3, 2, 1), nn.ReLU())

    stages = nn.ModuleList([nn.Sequential(stage(3, 8), stage(8, 8)), stage(8, 8), stage(8, 8)])

    def backbone(x):
        maps = []
        for s in stages:
            x = s(x)
            maps.append(x)
        return maps

    neck = FPN([8, 8, 8], 8)
    head = make_head(loss_dice_weight=0.5)
    modules = nn.ModuleList([stages, neck, head])
    optimizer = torch.optim.Adam(modules.parameters(), lr=1e-2)
    sample = seg_sample(seg, img_shape=(32, 32), ori_shape=(32, 32))
    for _ in range(150):
        losses = head.loss(neck(backbone(image)), [sample])
        optimizer.zero_grad()
        sum(losses.values()).backward()
        optimizer.step()
    modules.eval()
    [pred] = head.predict(neck(backbone(image)), [sample])
    accuracy = (pred.pred_sem_seg.data[0] == seg).float().mean()
    assert accuracy > 0.9
