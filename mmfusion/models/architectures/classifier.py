"""Encoders -> fusion -> head: multimodal classification and VQA."""
from typing import Dict, List, Optional, Union

import torch
import torch.nn as nn

from mmfusion.errors import ConfigError
from mmfusion.registry import MODELS
from mmfusion.structures import MultiModalDataSample

from ..adapters import build_fine_tuned
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
        aux_heads: optional modality -> head config: unimodal auxiliary
            heads on each encoder's pooled vector, trained with their own
            loss (its ``loss_weight`` weighs it), as in gradient-blending's
            unimodal branches (Wang et al., "What Makes Training Multi-Modal
            Classification Networks Hard?", CVPR 2020). They keep every
            encoder learning even when the fused head leans on one modality;
            only samples that have the modality train its head.
            ``in_dim`` defaults to the encoder's ``out_dim``. Their losses
            are logged as ``loss_aux_<modality>``.
        log_modality_contribution: log each modality's contribution every
            training iteration (``contrib_<modality>``, see
            :meth:`modality_scores`); on by itself with ``aux_heads`` and
            with ``OGMGEHook``.
        data_preprocessor: defaults to ``MultiModalDataPreprocessor``.
        on_nonfinite_loss: ``'raise'`` (default) or ``'skip'``; what a NaN
            or infinite loss does (see :class:`BaseMultiModalModel`).
        max_nonfinite_skips: with ``'skip'``, how many skipped iterations in
            a row count as divergence and stop training.

    ``forward(inputs, data_samples, mode)``: inputs maps modality -> batch;
    ``mode='loss'`` returns a dict of losses, ``'predict'`` the data samples
    with predictions, ``'tensor'`` the head's raw output.

    Missing modalities (the data samples' ``modality_mask``, or a ``None``
    batch): each encoder runs on the samples that have its modality only,
    and the mask goes to the fusion module (vector form: ``{modality:
    BoolTensor (B,)}``; token form: folded into the token masks).
    """

    def __init__(self, encoders: Dict[str, dict], fusion: dict, head: dict,
                 aux_heads: Optional[Dict[str, dict]] = None,
                 log_modality_contribution: bool = False,
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
        self.fusion = build_fine_tuned(fusion, 'model.fusion')  # may carry peft, freeze ...

        head = dict(head)
        head.setdefault('in_dim', self.fusion.out_dim)
        if head['in_dim'] != self.fusion.out_dim:
            raise ConfigError(f'model.head.in_dim={head["in_dim"]} but the fusion outputs '
                             f'{self.fusion.out_dim} features')
        self.head = MODELS.build(head)

        self.aux_heads = nn.ModuleDict()
        for name, cfg in (aux_heads or {}).items():
            if name not in self.encoders:
                raise ConfigError(f'model.aux_heads names modality {name!r} but model.encoders '
                                  f'has only {sorted(self.encoders)}')
            cfg = dict(cfg)
            cfg.setdefault('in_dim', self.encoders[name].out_dim)
            self.aux_heads[name] = MODELS.build(cfg)
        self.log_modality_contribution = False
        if log_modality_contribution or self.aux_heads:
            self.enable_modality_contribution('model.log_modality_contribution')
        # {modality: summed score over this batch's complete samples}, set by
        # each training forward while contributions are tracked (OGMGEHook reads it)
        self.last_modality_scores: Dict[str, torch.Tensor] = {}

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

    def enable_modality_contribution(self, key: str) -> None:
        """Track each modality's contribution in training (see
        :meth:`modality_scores`); ``key`` names the config asking for it in
        the error raised when the model cannot."""
        if len(self.encoders) < 2:
            raise ConfigError(f'{key}: a modality contribution needs at least two modalities, '
                              f'but model.encoders has only {sorted(self.encoders)}')
        heads = [self.head] + [h for name, h in self.aux_heads.items()]
        for head in heads:
            if not (hasattr(head, 'targets') and hasattr(head, 'scores')):
                raise ConfigError(f'{key}: a modality contribution needs a classification '
                                  f'head (ClsHead, MultiLabelClsHead), got '
                                  f'{type(head).__name__}')
        self.log_modality_contribution = True

    def encode_modalities(self, inputs: Dict[str, Union[torch.Tensor, dict, None]],
                          data_samples: Optional[List[MultiModalDataSample]] = None):
        """``(features, masks)``: each modality's :class:`ModalityFeatures`
        (encoders run on present samples only) and the modality masks
        ``{modality: BoolTensor (B,)}`` (empty for complete data)."""
        self.check_batch_modalities(inputs)
        masks = self.modality_masks(inputs, data_samples)
        feats = self.encode_present(inputs, masks, self.batch_size(inputs, data_samples))
        return feats, masks

    def fuse(self, feats: Dict[str, ModalityFeatures],
             masks: Dict[str, torch.Tensor]) -> torch.Tensor:
        """The fused vector (B, fusion.out_dim) of encoded modalities; ``masks``
        as from :meth:`encode_modalities`."""
        return self.fuse_features(self.fusion, feats, masks)

    def extract_feat(self, inputs: Dict[str, Union[torch.Tensor, dict, None]],
                     data_samples: Optional[List[MultiModalDataSample]] = None) -> torch.Tensor:
        """Encode and fuse; returns the fused vector (B, fusion.out_dim)."""
        return self.fuse(*self.encode_modalities(inputs, data_samples))

    def modality_scores(self, feats: Dict[str, ModalityFeatures],
                        masks: Dict[str, torch.Tensor],
                        data_samples: List[MultiModalDataSample]) -> Dict[str, torch.Tensor]:
        """Each modality's unimodal score per sample: ``{modality: Tensor (B,)}``.

        The score of modality m for sample i is OGM-GE's s_i^m (Peng et al.,
        "Balanced Multimodal Learning via On-the-fly Gradient Modulation",
        CVPR 2022): the probability the model gives the true class from m
        alone. It comes from m's auxiliary head when there is one; otherwise
        from the fusion module and head with every other modality masked as
        missing, which works with any fusion that honours the mask (for
        concatenation this is the paper's W_m phi_m split). Multi-label
        heads score the mean probability of the right decision per class.
        Samples lacking m score 0.
        """
        scores = {}
        for name in self.encoders:
            present = masks.get(name)
            if name in self.aux_heads:
                head = self.aux_heads[name]
                logits = head(feats[name].pooled)
            else:
                head = self.head
                only = {other: torch.zeros_like(present if present is not None else
                                                feats[name].pooled[:, 0], dtype=torch.bool)
                        for other in self.encoders if other != name}
                if present is not None:
                    only[name] = present
                logits = head(self.fuse(feats, only))
            probs = head.scores(logits)
            target = head.targets(data_samples, logits.device)
            if target.ndim == 1:
                score = probs.gather(1, target.unsqueeze(1)).squeeze(1)
            else:
                score = (probs * target + (1 - probs) * (1 - target)).mean(dim=1)
            if present is not None:
                score = score * present.to(score.dtype)
            scores[name] = score
        return scores

    def _aux_losses(self, feats: Dict[str, ModalityFeatures], masks: Dict[str, torch.Tensor],
                    data_samples: List[MultiModalDataSample]) -> Dict[str, torch.Tensor]:
        losses = {}
        for name, head in self.aux_heads.items():
            pooled, samples = feats[name].pooled, data_samples
            if name in masks:
                if not bool(masks[name].any()):
                    continue
                idx = masks[name].nonzero(as_tuple=True)[0]
                pooled = pooled.index_select(0, idx)
                samples = [data_samples[i] for i in idx.tolist()]
            for key, value in head.loss(pooled, samples).items():
                losses[f'{key}_aux_{name}'] = value
        return losses

    def _contribution(self, feats: Dict[str, ModalityFeatures], masks: Dict[str, torch.Tensor],
                      data_samples: List[MultiModalDataSample]) -> Dict[str, torch.Tensor]:
        """Log vars ``contrib_<m>``: the mean score of each modality over the
        samples that have every modality; stores their sums for OGMGEHook."""
        with torch.no_grad():
            scores = self.modality_scores(feats, masks, data_samples)
        complete = None
        for mask in masks.values():
            complete = mask if complete is None else complete & mask
        self.last_modality_scores = {}
        if complete is not None and not bool(complete.any()):
            return {}
        logs = {}
        for name, score in scores.items():
            score = score if complete is None else score[complete]
            self.last_modality_scores[name] = score.sum()
            logs[f'contrib_{name}'] = score.mean()
        return logs

    def forward(self, inputs: Dict[str, Union[torch.Tensor, dict, None]],
                data_samples: Optional[List[MultiModalDataSample]] = None,
                mode: str = 'tensor'):
        feats, masks = self.encode_modalities(inputs, data_samples)
        fused = self.fuse(feats, masks)
        if mode == 'loss':
            losses = self.head.loss(fused, data_samples)
            losses.update(self._aux_losses(feats, masks, data_samples))
            if self.log_modality_contribution:
                losses.update(self._contribution(feats, masks, data_samples))
            return losses
        if mode == 'predict':
            return self.head.predict(fused, data_samples)
        if mode == 'tensor':
            return self.head(fused)
        raise ValueError(f'unknown mode {mode!r}; expected "loss", "predict" or "tensor"')
