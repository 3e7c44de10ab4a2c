"""Grad-CAM equals captum's LayerGradCam; Grad-CAM++ and the pointing game."""
import torch
from analysis_fixtures import av_setup  # noqa: F401  (fixture)

from mmfusion.analysis import (
    argmax_point,
    class_activation_map,
    find_target_layer,
    pointing_hits,
    upsample,
)


def test_gradcam_matches_captum(av_setup):  # noqa: F811
    from captum.attr import LayerGradCam

    model, batches = av_setup
    with torch.no_grad():
        p = model.data_preprocessor(batches[0], False)
    layer = find_target_layer(model, p, 'image')
    assert layer == 'encoders.image.model.layer4'  # the ResNet's last stage
    cams, targets = class_activation_map(model, p, layer, method='gradcam')
    with torch.no_grad():
        assert torch.equal(targets, model(**p, mode='tensor').argmax(1))

    audio = p['inputs']['audio']
    ref = LayerGradCam(lambda img: model(dict(image=img, audio=audio), None, mode='tensor'),
                       model.get_submodule(layer)).attribute(p['inputs']['image'],
                                                             target=targets,
                                                             relu_attributions=True)[:, 0]
    ref = ref / ref.flatten(1).max(1).values.clamp_min(1e-12)[:, None, None]
    torch.testing.assert_close(cams, ref.detach(), atol=1e-5, rtol=1e-4)
    assert cams.shape[1:] == (2, 2)

    pp, _ = class_activation_map(model, p, layer, targets=targets, method='gradcam++')
    assert pp.shape == cams.shape and (pp >= 0).all() and torch.isfinite(pp).all()
    assert torch.allclose(pp.flatten(1).max(1).values[pp.flatten(1).max(1).values > 0],
                          torch.tensor(1.0))
    # another target explains another class
    other = (targets + 1) % 3
    cams_other, t_other = class_activation_map(model, p, layer, targets=other)
    assert torch.equal(t_other, other) and not torch.allclose(cams_other, cams)


def test_pointing_game_helpers():
    cams = torch.zeros(2, 4, 4)
    cams[0, 0, 3] = 1.0  # top right
    cams[1, 3, 0] = 1.0  # bottom left
    up = upsample(cams, (8, 8))
    pts = argmax_point(up)
    assert pts[0].tolist()[0] < 2 and pts[0].tolist()[1] >= 6
    masks = [torch.zeros(8, 8, dtype=torch.bool) for _ in range(2)]
    masks[0][:3, 5:] = True   # the object is top right in sample 0
    masks[1][:3, :3] = True   # top left in sample 1: a miss
    assert pointing_hits(pts, masks).tolist() == [True, False]


def _dense_setup(mmshapes_root, config):
    import os.path as osp

    from conftest import REPO_ROOT, point_datasets_at
    from mmengine.config import Config

    from mmfusion.analysis import build_loader
    from mmfusion.apis import init_model
    torch.manual_seed(0)
    cfg = Config.fromfile(osp.join(REPO_ROOT, config))
    point_datasets_at(cfg, mmshapes_root)
    model = init_model(cfg, None)
    data = next(iter(build_loader(model.cfg, 'test', batch_size=2)))
    with torch.no_grad():
        return model, model.data_preprocessor(data, False)


def test_detection_cam_of_the_top_box_and_of_a_chosen_box(mmshapes_root):
    from mmfusion.analysis import dense_score_fn, supports_modality_mask
    model, p = _dense_setup(mmshapes_root, 'configs/detection/mmshapes_rgbd_det.py')
    # dense models refuse missing modalities: the analysis tools zero them instead
    assert not supports_modality_mask(model)
    with torch.no_grad():
        cls_scores = model.head(model(**p, mode='tensor'))[0]
        top = dense_score_fn(model)(p)
        box = (0.0, 0.0, 31.0, 31.0)  # the top-left quarter of the 64 px input
        in_box = dense_score_fn(model, box)(p)
    want = torch.stack([c.flatten(2).max(dim=2).values for c in cls_scores]).max(dim=0).values
    assert torch.allclose(top, want)
    # by hand: the locations whose centre (j * s + s // 2, i * s + s // 2) is in the box
    per_level = []
    for cls, s in zip(cls_scores, model.head.strides):
        n = sum(1 for k in range(cls.shape[-1]) if k * s + s // 2 <= 31)
        if n:
            per_level.append(cls[:, :, :n, :n].flatten(2).max(dim=2).values)
    assert torch.allclose(in_box, torch.stack(per_level).max(dim=0).values)
    assert (in_box <= top + 1e-6).all()
    layer = find_target_layer(model, p, 'image')
    cams, targets = class_activation_map(model, p, layer, score_fn=dense_score_fn(model, box))
    assert torch.equal(targets, in_box.argmax(dim=1))
    assert cams.ndim == 3 and float(cams.max()) <= 1.0


def test_segmentation_cam_scores_a_mask(mmshapes_root):
    from mmfusion.analysis import dense_score_fn
    model, p = _dense_setup(mmshapes_root, 'configs/segmentation/mmshapes_rgbd_seg.py')
    with torch.no_grad():
        logits = model.head(model(**p, mode='tensor'))
        predicted = dense_score_fn(model)(p)
        whole = dense_score_fn(model, (0, 0, 10**4, 10**4))(p)
    assert torch.allclose(whole, logits.mean(dim=(2, 3)), atol=1e-6)
    pred = logits.argmax(dim=1)
    for b in range(logits.shape[0]):
        for c in range(logits.shape[1]):
            region = pred[b] == c
            want = logits[b, c][region].mean() if region.any() else torch.tensor(0.0)
            assert torch.allclose(predicted[b, c], want, atol=1e-5)
    layer = find_target_layer(model, p, 'image')
    cams, targets = class_activation_map(model, p, layer, targets=torch.tensor([1, 1]),
                                         score_fn=dense_score_fn(model))
    assert targets.tolist() == [1, 1] and cams.shape[0] == 2
