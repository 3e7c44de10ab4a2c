"""Class activation maps on image-like encoders: Grad-CAM and Grad-CAM++.

* Grad-CAM (Selvaraju et al., ICCV 2017): ``relu(sum_c w_c A_c)`` with
  ``w_c`` the spatial mean of ``d score / d A_c``;
* Grad-CAM++ (Chattopadhay et al., WACV 2018): ``w_c = sum_ij alpha_ij^c
  relu(d score / d A_c,ij)``, ``alpha = g^2 / (2 g^2 + sum_ij A * g^3)``
  (the closed form with the exponential of the score, as in the paper and
  pytorch-grad-cam).

Written on plain forward hooks (rather than captum's ``LayerGradCam``, which
has no Grad-CAM++, or pytorch-grad-cam, not a dependency) so both share one
code path over mmfusion's dict inputs; the Grad-CAM result is checked against
captum's ``LayerGradCam`` in the tests. ``score`` is a logit of the model's
``mode='tensor'`` output (a class or an answer), or for detection and
segmentation a box's or a mask's class score (:func:`dense_score_fn`).

Also the pointing game (Zhang et al., "Top-down Neural Attention by
Excitation Backprop", ECCV 2016): a hit when the map's maximum falls inside
the object's mask.
"""
from typing import Callable, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmfusion.errors import ConfigError

CAM_METHODS = ('gradcam', 'gradcam++')


def find_target_layer(model: nn.Module, processed: dict, modality: str) -> str:
    """The name of the last module of the ``modality`` encoder that outputs a
    4-D feature map (B, C, h, w): for a CNN, its last stage. One forward."""
    enc = model.encoders[modality]
    fired = []
    handles = [mod.register_forward_hook(
        lambda m, a, out, name=name: fired.append(name)
        if isinstance(out, torch.Tensor) and out.ndim == 4 else None)
        for name, mod in enc.named_modules() if name]
    try:
        with torch.no_grad():
            model(**processed, mode='tensor')
    finally:
        for h in handles:
            h.remove()
    if not fired:
        raise ConfigError(f'the {modality} encoder ({type(enc).__name__}) has no layer with a '
                          '4-D (B, C, h, w) output for a CAM; pass --target-layer')
    return f'encoders.{modality}.{fired[-1]}'


def _module(model: nn.Module, name: str) -> nn.Module:
    try:
        return model.get_submodule(name)
    except AttributeError as exc:
        raise ConfigError(f'target layer {name!r} is not a module of the model') from exc


def class_activation_map(model: nn.Module, processed: dict, target_layer: str,
                         targets: Optional[torch.Tensor] = None, method: str = 'gradcam',
                         score_fn: Optional[Callable] = None
                         ) -> Tuple[torch.Tensor, torch.Tensor]:
    """CAMs of a preprocessed batch.

    Args:
        model: an mmfusion model.
        processed: the data preprocessor's output.
        target_layer: a module name (:func:`find_target_layer`).
        targets: (B,) class / answer index per sample; None: the predicted one.
        method: ``'gradcam'`` or ``'gradcam++'``.
        score_fn: ``processed -> (B, C) scores``; default ``model(mode='tensor')``.

    Returns:
        ``(cams, targets)``: cams (B, h, w) on the layer's grid, each scaled to
        a maximum of 1 (all zero where the map is), and the explained targets (B,).
    """
    if method not in CAM_METHODS:
        raise ConfigError(f'CAM method must be one of {CAM_METHODS}, got {method!r}')
    layer = _module(model, target_layer)
    store = {}

    def hook(module, args, out):
        store['act'] = out
        out.register_hook(lambda g: store.__setitem__('grad', g))

    handle = layer.register_forward_hook(hook)
    score_fn = score_fn or (lambda p: model(**p, mode='tensor'))
    try:
        with torch.enable_grad():
            scores = score_fn(processed)
            if targets is None:
                targets = scores.argmax(dim=1)
            picked = scores.gather(1, targets.view(-1, 1).to(scores.device)).sum()
            model.zero_grad(set_to_none=True)
            picked.backward()
    finally:
        handle.remove()
    act, grad = store['act'].detach(), store['grad'].detach()
    if method == 'gradcam':
        weights = grad.mean(dim=(2, 3), keepdim=True)
    else:
        g2, g3 = grad.pow(2), grad.pow(3)
        denom = 2 * g2 + act.sum(dim=(2, 3), keepdim=True) * g3
        alpha = g2 / torch.where(denom != 0, denom, torch.ones_like(denom))
        weights = (alpha * F.relu(grad)).sum(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * act).sum(dim=1))
    peak = cam.flatten(1).max(dim=1).values.clamp_min(1e-12)
    return cam / peak[:, None, None], targets.detach()


def dense_score_fn(model: nn.Module, box: Optional[Sequence[float]] = None
                   ) -> Callable[[dict], torch.Tensor]:
    """``processed -> (B, C)`` class scores of a detection or segmentation
    model (``model.head`` on the fused pyramid), for a CAM of a box or a mask.

    * detection (a head returning per-level classification maps, FCOS): the
      score of class c is its highest classification logit over every
      location of every level, i.e. the top candidate box of that class; with
      ``box`` only locations whose centre lies inside it count (the box the
      user chose);
    * segmentation (a head returning (B, C, h, w) logits): the mean logit of
      class c over the pixels predicted as c, or over ``box`` when given (a
      rectangular mask).

    ``box`` is ``(x1, y1, x2, y2)`` in the pixels of the network input (the
    preprocessed image, as the CAM figures draw it).
    """
    head = model.head

    def score(processed: dict) -> torch.Tensor:
        out = head(model(**processed, mode='tensor'))
        size = processed['inputs'][next(iter(model.spatial_modalities))].shape[-2:] \
            if hasattr(model, 'spatial_modalities') else None
        if isinstance(out, (tuple, list)):  # detection: (cls_scores, bbox_preds, ...)
            per_level = []
            for level, cls in enumerate(out[0]):
                if box is not None:
                    stride = head.strides[level]
                    h, w = cls.shape[-2:]
                    ys = torch.arange(h, device=cls.device) * stride + stride // 2
                    xs = torch.arange(w, device=cls.device) * stride + stride // 2
                    inside = (((ys >= box[1]) & (ys <= box[3]))[:, None]
                              & ((xs >= box[0]) & (xs <= box[2]))[None])
                    if not bool(inside.any()):
                        continue
                    cls = cls.masked_fill(~inside, float('-inf'))
                per_level.append(cls.flatten(2).max(dim=2).values)
            if not per_level:
                raise ConfigError(f'CAM box {list(box)}: no location of any level has its '
                                  'centre inside it; give a box in network-input pixels')
            return torch.stack(per_level).max(dim=0).values
        logits = out  # segmentation (B, C, h, w)
        if box is None:
            region = F.one_hot(logits.argmax(dim=1), logits.shape[1]).permute(0, 3, 1, 2)
        else:
            h, w = logits.shape[-2:]
            sy, sx = (size[0] / h, size[1] / w) if size is not None else (1.0, 1.0)
            ys = (torch.arange(h, device=logits.device) + 0.5) * sy
            xs = (torch.arange(w, device=logits.device) + 0.5) * sx
            region = (((ys >= box[1]) & (ys <= box[3]))[:, None]
                      & ((xs >= box[0]) & (xs <= box[2]))[None])[None, None]
            if not bool(region.any()):
                raise ConfigError(f'CAM box {list(box)} covers no pixel of the label map')
        region = region.to(logits.dtype)
        return (logits * region).sum(dim=(2, 3)) / region.sum(dim=(2, 3)).clamp_min(1.0)

    return score


def upsample(cams: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """(B, h, w) -> (B, H, W), bilinear as in Grad-CAM's visualisation."""
    return F.interpolate(cams[:, None], size=size, mode='bilinear', align_corners=False)[:, 0]


def argmax_point(maps: torch.Tensor) -> torch.Tensor:
    """(B, H, W) -> (B, 2) (row, col) of each map's maximum."""
    flat = maps.flatten(1).argmax(dim=1)
    return torch.stack([flat // maps.shape[-1], flat % maps.shape[-1]], dim=1)


def pointing_hits(points: torch.Tensor, masks: Sequence[torch.Tensor]) -> torch.Tensor:
    """(B,) bool: is ``points[b]`` (row, col) inside ``masks[b]`` (H, W)?"""
    return torch.tensor([bool(m[int(p[0]), int(p[1])]) for p, m in zip(points, masks)])


__all__ = ['CAM_METHODS', 'argmax_point', 'class_activation_map', 'dense_score_fn',
           'find_target_layer', 'pointing_hits', 'upsample']
