"""Contrastive multi-tower models: per modality an encoder and a projection, one space."""
import itertools
import math
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmfusion.errors import ConfigError
from mmfusion.registry import MODELS
from mmfusion.structures import MultiModalDataSample

from ..layers import build_mlp
from .base import BaseMultiModalModel

PROJECTION_KEYS = ('out_dim', 'hidden_dims', 'dropout')


@MODELS.register_module()
class DualEncoder(BaseMultiModalModel):
    """Towers (any registered encoder + a projection) aligned by a contrastive loss.

    CLIP (Radford et al., "Learning Transferable Visual Models From Natural
    Language Supervision", ICML 2021) with two towers; with more, every pair
    of towers is aligned (the sum of the pairwise losses, as ImageBind's
    pairs, Girdhar et al. CVPR 2023). The temperature is learnt as a log
    scale, clamped to at most ``max_logit_scale`` before each training
    forward (open_clip clamps it after each step: the same sequence of
    values). ``loss`` picks the objective: ``dict(type='ClipLoss')``
    (InfoNCE) or ``dict(type='SigLipLoss')`` (which adds a learnt logit
    bias); the loss's own initial scale/bias are used unless given.

    Args:
        encoders: modality -> encoder config; any registered encoder whose
            ``forward`` returns :class:`ModalityFeatures` (its ``pooled`` view
            is projected). At least two.
        embed_dim: size D of the shared embedding space.
        projections: modality -> ``dict(out_dim=D, hidden_dims=(), dropout=0.)``;
            default a bias-free ``Linear(encoder.out_dim, D)`` per tower (as
            CLIP). Every tower must project to the same size.
        loss: the contrastive loss config.
        init_logit_scale, init_logit_bias: initial log-scale and bias; None
            takes the loss's defaults (CLIP: log(1/0.07), no bias; SigLIP:
            log 10 and -10).
        max_logit_scale: the clamp of the (exponentiated) scale, 100 as CLIP.
        caption_modality: the text-like modality whose several items per
            sample (``captions`` in the data sample's metainfo, packed by the
            caption datasets in test mode) are embedded in ``predict``.
        pairs: the tower pairs to align; default every pair.
        data_preprocessor: defaults to ``MultiModalDataPreprocessor``.
        on_nonfinite_loss, max_nonfinite_skips: see :class:`BaseMultiModalModel`.

    ``forward(inputs, data_samples, mode)``, inputs modality -> batch:

    * ``'loss'``: ``{'loss' or 'loss_<a>_<b>': (), 'logit_scale': ()}``,
      row i of every modality being one pair;
    * ``'predict'``: the data samples with ``<modality>_embeds`` (n, D)
      L2-normalised embeddings, n = 1 for a packed input and the number of
      captions for the caption modality; a sample whose ``modality_mask``
      says a modality is missing gets no embedding for it (a retrieval query
      or gallery item carries one modality);
    * ``'tensor'``: modality -> (B, D) L2-normalised embeddings.
    """

    def __init__(self, encoders: Dict[str, dict], embed_dim: int = 256,
                 projections: Optional[Dict[str, dict]] = None,
                 loss: Optional[dict] = None, init_logit_scale: Optional[float] = None,
                 init_logit_bias: Optional[float] = None, max_logit_scale: float = 100.0,
                 caption_modality: str = 'text',
                 pairs: Optional[Sequence[Tuple[str, str]]] = None,
                 data_preprocessor: Optional[dict] = None, on_nonfinite_loss: str = 'raise',
                 max_nonfinite_skips: int = 10, init_cfg: Optional[dict] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg,
                         on_nonfinite_loss=on_nonfinite_loss,
                         max_nonfinite_skips=max_nonfinite_skips)
        self.build_encoders(encoders)
        if len(self.encoders) < 2:
            raise ConfigError(f'model.encoders: {type(self).__name__} aligns towers, so it '
                              f'needs at least two encoders, got {sorted(self.encoders)}')
        self._check_vocab_sizes()
        self.embed_dim = self._check_projection_sizes(projections or {}, embed_dim)
        self.projections = nn.ModuleDict({
            name: self._build_projection(name, enc.out_dim, (projections or {}).get(name))
            for name, enc in self.encoders.items()})

        self.loss_module = MODELS.build(loss or dict(type='ClipLoss'))
        if init_logit_scale is None:
            init_logit_scale = getattr(self.loss_module, 'default_init_logit_scale',
                                       math.log(1 / 0.07))
        if init_logit_bias is None:
            init_logit_bias = getattr(self.loss_module, 'default_init_logit_bias', None)
        if max_logit_scale <= 0:
            raise ConfigError(f'model.max_logit_scale must be > 0, got {max_logit_scale}')
        self.max_log_scale = math.log(max_logit_scale)
        self.logit_scale = nn.Parameter(torch.tensor(float(init_logit_scale)))
        self.logit_bias = (nn.Parameter(torch.tensor(float(init_logit_bias)))
                           if init_logit_bias is not None else None)
        self.caption_modality = caption_modality

        names = list(self.encoders)
        self.pairs = [tuple(p) for p in pairs] if pairs else list(itertools.combinations(names, 2))
        for pair in self.pairs:
            unknown = [m for m in pair if m not in self.encoders]
            if len(pair) != 2 or unknown:
                raise ConfigError(f'model.pairs: {pair!r} must be two modalities of '
                                  f'model.encoders {names}')

    # -- construction checks -------------------------------------------------

    def _check_vocab_sizes(self) -> None:
        """A tokenizer that produces ids its text tower cannot embed fails here, not
        with an index error in the first batch."""
        tokenizers = getattr(self.data_preprocessor, 'tokenizers', {})
        for name, enc in self.encoders.items():
            if name in tokenizers and hasattr(enc, 'vocab_size'):
                n = len(tokenizers[name])
                if n > enc.vocab_size:
                    raise ConfigError(
                        f'model.data_preprocessor.{name}.tokenizer has {n} tokens but '
                        f'model.encoders.{name} embeds only {enc.vocab_size} (its vocab_size); '
                        'the tokenizer and the text tower must come from the same model, or '
                        "raise the encoder's vocab_size / lower the tokenizer's max_vocab_size")

    def _check_projection_sizes(self, projections: Dict[str, dict], embed_dim: int) -> int:
        unknown = sorted(set(projections) - set(self.encoders))
        if unknown:
            raise ConfigError(f'model.projections names {unknown}, which are not towers of '
                              f'model.encoders {sorted(self.encoders)}')
        sizes = {name: int(cfg.get('out_dim', embed_dim)) for name, cfg in projections.items()
                 if cfg is not None}
        sizes.update({name: int(embed_dim) for name in self.encoders if name not in sizes})
        if len(set(sizes.values())) > 1:
            listed = ', '.join(f'{k}={v}' for k, v in sizes.items())
            raise ConfigError(f'model.projections: the towers project to different sizes '
                              f'({listed}); contrastive towers share one embedding space, so '
                              'give every projection the same out_dim (or only embed_dim)')
        size = next(iter(sizes.values()))
        if size < 1:
            raise ConfigError(f'model.embed_dim must be >= 1, got {size}')
        return size

    def _build_projection(self, name: str, in_dim: int, cfg: Optional[dict]) -> nn.Module:
        cfg = dict(cfg or {})
        unknown = sorted(set(cfg) - set(PROJECTION_KEYS))
        if unknown:
            raise ConfigError(f'model.projections.{name}: unknown keys {unknown}; expected '
                              f'some of {list(PROJECTION_KEYS)}')
        hidden = list(cfg.get('hidden_dims') or [])
        if not hidden:
            # CLIP's projections are bias-free linear maps
            return nn.Linear(in_dim, self.embed_dim, bias=False)
        return build_mlp([in_dim, *hidden, self.embed_dim], float(cfg.get('dropout', 0.0)))

    # -- embedding -------------------------------------------------------------

    def encode(self, modality: str, x: Union[torch.Tensor, dict]) -> torch.Tensor:
        """(B, D) L2-normalised embeddings of a preprocessed batch of one modality."""
        feats = self.encoders[modality](x)
        return F.normalize(self.projections[modality](feats.pooled), dim=-1)

    @torch.no_grad()
    def encode_texts(self, texts: Sequence[str], modality: Optional[str] = None,
                     batch_size: int = 256) -> torch.Tensor:
        """(N, D) L2-normalised embeddings of raw strings, tokenised by the data
        preprocessor exactly as training batches are."""
        modality = modality or self.caption_modality
        texts = list(texts)
        if not texts:
            return torch.zeros(0, self.embed_dim, device=self.logit_scale.device)
        out = []
        for start in range(0, len(texts), batch_size):
            chunk = texts[start:start + batch_size]
            batch = self.data_preprocessor(dict(inputs={modality: chunk}), False)
            out.append(self.encode(modality, batch['inputs'][modality]))
        return torch.cat(out)

    def scale_and_bias(self) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """The exponentiated (clamped) logit scale and the logit bias (or None)."""
        return self.logit_scale.clamp(max=self.max_log_scale).exp(), self.logit_bias

    # -- forward ----------------------------------------------------------------

    def forward(self, inputs: Dict[str, Union[torch.Tensor, dict]],
                data_samples: Optional[List[MultiModalDataSample]] = None,
                mode: str = 'tensor'):
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return {name: self.encode(name, x) for name, x in inputs.items()
                    if name in self.encoders}
        raise ValueError(f'unknown mode {mode!r}; expected "loss", "predict" or "tensor"')

    def loss(self, inputs: dict, data_samples=None) -> Dict[str, torch.Tensor]:
        self.check_batch_modalities(inputs)
        if self.training:
            # open_clip clamps after each optimizer step; clamping before the
            # next use gives the same values and needs no hook
            with torch.no_grad():
                self.logit_scale.clamp_(0, self.max_log_scale)
        embeds = {name: self.encode(name, x) for name, x in inputs.items()}
        scale, bias = self.scale_and_bias()
        losses = {}
        for a, b in self.pairs:
            key = 'loss' if len(self.pairs) == 1 else f'loss_{a}_{b}'
            losses[key] = self.loss_module(embeds[a], embeds[b], scale, bias)
        losses['logit_scale'] = scale.detach()
        return losses

    def predict(self, inputs: dict, data_samples: Optional[List[MultiModalDataSample]] = None
                ) -> List[MultiModalDataSample]:
        unknown = [m for m in inputs if m not in self.encoders]
        if unknown:
            raise ConfigError(f'the batch carries {unknown}, which model.encoders '
                              f'{sorted(self.encoders)} does not encode')
        if data_samples is None:
            batch = next(v for v in inputs.values() if v is not None)
            n = len(batch['input_ids']) if isinstance(batch, dict) else len(batch)
            data_samples = [MultiModalDataSample() for _ in range(n)]
        # a sample may carry only some towers' inputs (a text query, a gallery
        # image): each tower embeds the samples that have its modality
        masks = self.modality_masks(inputs, data_samples)
        for name, x in inputs.items():
            if x is None or (name == self.caption_modality and self._has_captions(data_samples)):
                continue  # the captions below include this sample's text
            present = masks.get(name)
            if present is None:
                rows, idx = self.encode(name, x), range(len(data_samples))
            else:
                idx = present.nonzero(as_tuple=True)[0]
                sub = ({k: v.index_select(0, idx) for k, v in x.items()}
                       if isinstance(x, dict) else x.index_select(0, idx))
                rows, idx = self.encode(name, sub), idx.tolist()
            for i, row in zip(idx, rows):
                data_samples[i].set_field(row.unsqueeze(0), f'{name}_embeds')
        if self.caption_modality in self.encoders and self._has_captions(data_samples):
            counts = [len(s.captions) for s in data_samples]
            flat = [c for s in data_samples for c in s.captions]
            emb = self.encode_texts(flat, self.caption_modality)
            for sample, rows in zip(data_samples, emb.split(counts)):
                sample.set_field(rows, f'{self.caption_modality}_embeds')
        return data_samples

    @staticmethod
    def _has_captions(data_samples) -> bool:
        return bool(data_samples) and all('captions' in s for s in data_samples)


__all__ = ['DualEncoder']
