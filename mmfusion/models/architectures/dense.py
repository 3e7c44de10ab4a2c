"""Encoders -> necks -> spatial fusion -> dense head: detection and segmentation."""
import inspect
from typing import Dict, List, Optional, Union

import torch
import torch.nn as nn

from mmfusion.errors import ConfigError
from mmfusion.registry import MODELS
from mmfusion.structures import MultiModalDataSample

from ..encoders.base import ModalityFeatures
from .base import BaseMultiModalModel


def _init_arguments(type_name) -> set:
    """The constructor arguments of a registered class (or a class), following
    ``*args, **kwargs`` that a subclass passes on to its parents."""
    cls = MODELS.get(type_name) if isinstance(type_name, str) else type_name
    names = set()
    for klass in (cls.__mro__ if cls is not None else ()):
        if '__init__' not in vars(klass):
            continue
        params = inspect.signature(klass.__init__).parameters.values()
        names |= {p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
        if not any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params):
            break
    return names


@MODELS.register_module()
class MultiModalDenseModel(BaseMultiModalModel):
    """A detector or segmentor over several modalities.

    Image-like modalities (image, depth, thermal ...) are encoded into
    feature pyramids (an encoder with ``out_indices``), each refined by its
    own neck (e.g. ``FPN``); the other modalities (text) are encoded into
    vectors and tokens. A spatial fusion module merges them per pyramid level
    (``SpatialConcatFusion`` for RGB-D, ``SpatialFiLMFusion`` or
    ``SpatialCrossAttentionFusion`` for text), and a dense head (``FCOSHead``,
    ``FPNSegHead``) predicts from the fused pyramid. The head decides the
    task, as ``MultiModalClassifier``'s head does.

    Sizes are written once: ``necks.<m>.in_channels`` defaults to the
    encoder's ``map_channels``, ``fusion.in_channels`` to each neck's
    ``out_channels``, a text fusion's ``cond_dim`` to the text encoder's
    ``out_dim``, and ``head.in_channels`` to the fusion's ``out_channels``.

    Args:
        encoders: modality name -> encoder config; ``None`` drops an
            inherited one (the single-modality baselines).
        necks: modality name -> neck config, for image-like modalities.
        fusion: a spatial fusion config; ``None`` for a single image-like
            modality and no text (the pyramid goes straight to the head).
        head: a dense head config.
        data_preprocessor, on_nonfinite_loss, max_nonfinite_skips, init_cfg:
            as for :class:`MultiModalClassifier`.

    ``forward(inputs, data_samples, mode)``: ``'loss'`` returns the head's
    losses; ``'predict'`` the data samples with ``pred_instances`` or
    ``pred_sem_seg``; ``'tensor'`` the fused pyramid [(B, C, H_l, W_l), ...].
    """
    # the spatial fusion interface has no modality mask (yet): a missing
    # modality is refused in extract_feat, and the analysis tools zero it instead
    accepts_modality_mask = False


    def __init__(self, encoders: Dict[str, Optional[dict]], head: dict,
                 necks: Optional[Dict[str, Optional[dict]]] = None,
                 fusion: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None,
                 on_nonfinite_loss: str = 'raise', max_nonfinite_skips: int = 10,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg,
                         on_nonfinite_loss=on_nonfinite_loss,
                         max_nonfinite_skips=max_nonfinite_skips)
        self.build_encoders(encoders)
        spatial = [m for m, enc in self.encoders.items()
                   if getattr(enc, 'map_channels', None) is not None]
        if not spatial:
            raise ConfigError('model.encoders: no encoder produces feature maps; give the image '
                              'encoder out_indices, e.g. TimmEncoder(out_indices=(2, 3, 4))')

        necks = {m: cfg for m, cfg in (necks or {}).items() if cfg is not None}
        unknown = sorted(set(necks) - set(spatial))
        if unknown:
            raise ConfigError(f'model.necks names {unknown}, which have no feature-map encoder '
                              f'in model.encoders (those are {spatial})')
        self.necks = nn.ModuleDict()
        channels = {}
        for m in spatial:
            if m in necks:
                cfg = dict(necks[m])
                cfg.setdefault('in_channels', list(self.encoders[m].map_channels))
                self.necks[m] = MODELS.build(cfg)
                channels[m] = self.necks[m].out_channels
            else:
                channels[m] = self.encoders[m].map_channels[-1]

        conditions = [m for m in self.encoders if m not in spatial]
        if fusion is None:
            if len(spatial) > 1 or conditions:
                raise ConfigError(f'model.fusion is None, but the model encodes {sorted(spatial)}'
                                  f' as feature maps and {conditions} as conditions; a spatial '
                                  'fusion (e.g. SpatialConcatFusion, SpatialFiLMFusion) must '
                                  'merge them')
            self.fusion = None
            out_channels = channels[spatial[0]]
        else:
            fusion = dict(fusion)
            fusion.setdefault('in_channels', {m: channels[m] for m in spatial})
            cond_key = fusion.get('cond_key', 'text')
            if cond_key in self.encoders and 'cond_dim' in _init_arguments(fusion['type']):
                fusion.setdefault('cond_dim', self.encoders[cond_key].out_dim)
            self.fusion = MODELS.build(fusion)
            out_channels = self.fusion.out_channels
        self.spatial_modalities = spatial

        head = dict(head)
        head.setdefault('in_channels', out_channels)
        if head['in_channels'] != out_channels:
            raise ConfigError(f'model.head.in_channels={head["in_channels"]} but the fused '
                              f'pyramid has {out_channels} channels; drop head.in_channels')
        self.head = MODELS.build(head)

    def extract_feat(self, inputs: Dict[str, Union[torch.Tensor, dict]],
                     data_samples: Optional[List[MultiModalDataSample]] = None
                     ) -> List[torch.Tensor]:
        """Encode every modality and fuse: the fused pyramid [(B, C, H_l, W_l), ...]."""
        self.check_batch_modalities(inputs)
        missing = self.modality_masks(inputs, data_samples)
        if missing:
            # the spatial fusion interface has no modality mask (yet)
            raise ConfigError(f'{type(self).__name__} needs every modality, but some samples '
                              f'lack {sorted(missing)}; dense models do not support missing '
                              'modalities: drop RemoveModality/ModalityDropout from the '
                              'pipeline and allow_missing_modalities from the dataset config')
        feats: Dict[str, ModalityFeatures] = {m: enc(inputs[m]) for m, enc in self.encoders.items()}
        maps = {}
        for m in self.spatial_modalities:
            levels = list(feats[m].maps)
            maps[m] = self.necks[m](levels) if m in self.necks else levels
        if self.fusion is None:
            return maps[self.spatial_modalities[0]]
        cond = {m: f for m, f in feats.items() if m not in maps}
        return self.fusion(maps, cond or None)

    def forward(self, inputs: Dict[str, Union[torch.Tensor, dict]],
                data_samples: Optional[List[MultiModalDataSample]] = None,
                mode: str = 'tensor'):
        pyramid = self.extract_feat(inputs, data_samples)
        if mode == 'loss':
            return self.head.loss(pyramid, data_samples)
        if mode == 'predict':
            return self.head.predict(pyramid, data_samples)
        if mode == 'tensor':
            return pyramid
        raise ValueError(f'unknown mode {mode!r}; expected "loss", "predict" or "tensor"')
