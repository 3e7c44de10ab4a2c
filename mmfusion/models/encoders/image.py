"""Image encoders built from timm models."""
import os.path as osp
from typing import Optional, Sequence

import torch

from mmfusion.registry import MODELS

from .base import BaseEncoder, ModalityFeatures


@MODELS.register_module()
class TimmEncoder(BaseEncoder):
    """Any ``timm.create_model`` network as an image (or image-like) encoder.

    Args:
        model_name: a timm model name, e.g. ``'resnet18'``, ``'vit_tiny_patch16_224'``.
        checkpoint: a local weights file (timm's ``pretrained_cfg_overlay``);
            None for random initialisation. Never downloads.
        in_chans: input channels (3 for RGB, 1 for depth).
        out_indices: take feature maps of these stages (timm's
            ``features_only``) instead of the full network: ``(2,)`` stops at
            stride 8 for a finer grid, ``(1, 2, 3, 4)`` gives a pyramid for
            dense tasks. None: the whole network's final features.
        frozen: keep the weights fixed (no gradients, eval-mode norm layers).
        **kwargs: passed to ``timm.create_model`` (``drop_rate``, ``img_size`` ...).

    Input: (B, in_chans, H, W). Output :class:`ModalityFeatures`:
        tokens (B, h*w, D) grid cells of the last feature map (or the ViT
        tokens), pooled (B, D) their mean (or the model's own pre-logits
        pooling), maps the feature maps of ``out_indices`` (if given);
        D = ``out_dim`` = channels of the last map. With ``out_indices``,
        ``map_channels`` and ``map_strides`` list each map's channels and
        stride (None otherwise).
    """

    def __init__(self, model_name: str, checkpoint: Optional[str] = None, in_chans: int = 3,
                 out_indices: Optional[Sequence[int]] = None, frozen: bool = False,
                 init_cfg: Optional[dict] = None, **kwargs) -> None:
        super().__init__(init_cfg=init_cfg)
        import timm

        # timm's own spelling of a local weights file works too
        overlay_arg = dict(kwargs.pop('pretrained_cfg_overlay', None) or {})
        checkpoint = overlay_arg.pop('file', None) or checkpoint
        if kwargs.pop('pretrained', False) and checkpoint is None:
            raise ValueError('TimmEncoder: pretrained=True would download weights; mmfusion '
                             'never downloads. Pass checkpoint=<local weights file>.')
        if checkpoint is not None and not osp.isfile(checkpoint):
            raise FileNotFoundError(f'TimmEncoder: checkpoint file not found: {checkpoint}')
        overlay = dict(overlay_arg, file=checkpoint) if checkpoint else None
        if out_indices is not None:
            kwargs.update(features_only=True, out_indices=tuple(out_indices))
        else:
            # no global_pool='': a ViT's forward_head pools its tokens with it
            kwargs.update(num_classes=0)
        self.model = timm.create_model(model_name, pretrained=checkpoint is not None,
                                       pretrained_cfg_overlay=overlay, in_chans=in_chans,
                                       **kwargs)
        # timm initialises (or loads) its own weights; MMEngine's init_weights
        # must not re-initialise them.
        self.model.is_init = True
        self.features_only = out_indices is not None
        self.out_dim = int(self.model.feature_info.channels()[-1] if self.features_only
                           else self.model.num_features)
        # channels and strides of ``maps``, for the necks that take them
        self.map_channels = (list(self.model.feature_info.channels())
                             if self.features_only else None)
        self.map_strides = (list(self.model.feature_info.reduction())
                            if self.features_only else None)
        if frozen:
            self.freeze()

    def forward(self, x: torch.Tensor) -> ModalityFeatures:
        if self.features_only:
            maps = self.model(x)
            last = maps[-1]
            return ModalityFeatures(pooled=last.mean(dim=(2, 3)),
                                    tokens=last.flatten(2).transpose(1, 2), maps=maps)
        feats = self.model.forward_features(x)
        if feats.ndim == 4:  # CNN: (B, D, h, w) grid
            tokens = feats.flatten(2).transpose(1, 2)
            pooled = feats.mean(dim=(2, 3))
        else:  # transformer: (B, N, D) tokens
            tokens = feats
            pooled = self.model.forward_head(feats, pre_logits=True)
        return ModalityFeatures(pooled=pooled, tokens=tokens)
