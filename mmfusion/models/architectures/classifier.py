"""Encoders -> fusion -> head: multimodal classification and VQA."""
from typing import Dict, List, Optional, Union

import torch

from mmfusion.errors import ConfigError
from mmfusion.registry import MODELS
from mmfusion.structures import MultiModalDataSample

from ..encoders.base import ModalityFeatures
from .base import BaseMultiModalModel


@MODELS.register_module()
class MultiModalClassifier(BaseMultiModalModel):
    """Encode each modality, fuse, and classify the fused vector.

    Serves single-label and multi-label classification and VQA (answer
    classification): the head decides which. Config keys fill each other in,
    so sizes are written once:

    * ``fusion.in_dims`` defaults to each encoder's ``out_dim`` (and is
      checked against them when given);
    * ``head.in_dim`` defaults to ``fusion.out_dim``.

    Args:
        encoders: modality name -> encoder config. The data preprocessor's
            batch must carry exactly these modalities. A ``None`` entry drops
            an inherited encoder, e.g. ``encoders=dict(image=None)`` for a
            question-only ablation.
        fusion: a vector fusion (takes each encoder's pooled view) or a token
            fusion (takes the token view; its pooled view feeds the head).
        head: e.g. ``VQAHead``.
        data_preprocessor: defaults to ``MultiModalDataPreprocessor``.
        on_nonfinite_loss: ``'raise'`` (default) or ``'skip'``; what a NaN
            or infinite loss does (see :class:`BaseMultiModalModel`).
        max_nonfinite_skips: with ``'skip'``, how many skipped iterations in
            a row count as divergence and stop training.

    ``forward(inputs, data_samples, mode)``: inputs maps modality -> batch;
    ``mode='loss'`` returns a dict of losses, ``'predict'`` the data samples
    with predictions, ``'tensor'`` the head's raw output.
    """

    def __init__(self, encoders: Dict[str, dict], fusion: dict, head: dict,
                 data_preprocessor: Optional[dict] = None,
                 on_nonfinite_loss: str = 'raise', max_nonfinite_skips: int = 10,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg,
                         on_nonfinite_loss=on_nonfinite_loss,
                         max_nonfinite_skips=max_nonfinite_skips)
        self.build_encoders(encoders)
        self._check_vocab_sizes()

        fusion = dict(fusion)
        enc_dims = {name: enc.out_dim for name, enc in self.encoders.items()}
        given = fusion.setdefault('in_dims', enc_dims)
        for name, dim in given.items():
            if name not in enc_dims:
                raise ConfigError(f'model.fusion.in_dims names modality {name!r} but '
                                 f'model.encoders has only {sorted(enc_dims)}')
            if dim != enc_dims[name]:
                raise ConfigError(f'model.fusion.in_dims[{name!r}]={dim} but the {name} encoder '
                                 f'outputs {enc_dims[name]} features; drop in_dims to use the '
                                 'encoder sizes')
        self.fusion = MODELS.build(fusion)

        head = dict(head)
        head.setdefault('in_dim', self.fusion.out_dim)
        if head['in_dim'] != self.fusion.out_dim:
            raise ConfigError(f'model.head.in_dim={head["in_dim"]} but the fusion outputs '
                             f'{self.fusion.out_dim} features')
        self.head = MODELS.build(head)

    def _check_vocab_sizes(self) -> None:
        """Catch a tokenizer larger than its text encoder's embedding at build time."""
        tokenizers = getattr(self.data_preprocessor, 'tokenizers', {})
        for name, enc in self.encoders.items():
            if name in tokenizers and hasattr(enc, 'vocab_size'):
                n = len(tokenizers[name])
                if n > enc.vocab_size:
                    raise ConfigError(f'the {name} tokenizer has {n} tokens but '
                                     f'model.encoders.{name} embeds only {enc.vocab_size}; '
                                     'raise its vocab_size or lower the tokenizer\'s '
                                     'max_vocab_size')

    def extract_feat(self, inputs: Dict[str, Union[torch.Tensor, dict]]) -> torch.Tensor:
        """Encode and fuse; returns the fused vector (B, fusion.out_dim)."""
        self.check_batch_modalities(inputs)
        feats: Dict[str, ModalityFeatures] = {
            name: enc(inputs[name]) for name, enc in self.encoders.items()}
        if self.fusion.input_form == 'vector':
            return self.fusion({name: f.pooled for name, f in feats.items()})
        tokens = {name: f.tokens if f.tokens is not None else f.pooled.unsqueeze(1)
                  for name, f in feats.items()}
        masks = {name: f.mask for name, f in feats.items() if f.mask is not None}
        return self.fusion.forward_pooled(tokens, masks or None)

    def forward(self, inputs: Dict[str, Union[torch.Tensor, dict]],
                data_samples: Optional[List[MultiModalDataSample]] = None,
                mode: str = 'tensor'):
        feats = self.extract_feat(inputs)
        if mode == 'loss':
            return self.head.loss(feats, data_samples)
        if mode == 'predict':
            return self.head.predict(feats, data_samples)
        if mode == 'tensor':
            return self.head(feats)
        raise ValueError(f'unknown mode {mode!r}; expected "loss", "predict" or "tensor"')
