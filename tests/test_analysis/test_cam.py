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
