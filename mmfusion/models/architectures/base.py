"""What every mmfusion model does the same way: the guarded training step."""
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.distributed as torch_dist
import torch.nn as nn
from mmengine.dist import is_distributed
from mmengine.logging import MessageHub, print_log
from mmengine.model import BaseModel
from mmengine.optim import OptimWrapper

from mmfusion.errors import ConfigError, NonFiniteLossError

from ..adapters import build_fine_tuned
from ..encoders.base import ModalityFeatures

NONFINITE_POLICIES = ('raise', 'skip')


class BaseMultiModalModel(BaseModel):
    """MMEngine's ``BaseModel`` whose training step refuses a non-finite loss.

    Also what every mmfusion model shares: ``MultiModalDataPreprocessor`` as
    the default data preprocessor, :meth:`build_encoders`,
    :meth:`check_batch_modalities`, and the missing-modality path:
    :meth:`modality_masks` (the data samples' ``modality_mask`` as
    ``{modality: BoolTensor (B,)}``) and :meth:`encode_present` (each encoder runs on
    the samples that have its modality only).

    A NaN or infinite loss, stepped, turns every weight into NaN and the
    next checkpoint with it. Before the optimizer step each loss term is
    checked, and the step is never taken with a non-finite one:

    * ``on_nonfinite_loss='raise'`` (default): stop with
      :class:`~mmfusion.errors.NonFiniteLossError` naming the iteration and
      the loss terms; the checkpoints written so far stay intact.
    * ``'skip'``: drop this iteration's update with a warning, and raise once
      ``max_nonfinite_skips`` iterations in a row were skipped (the model has
      diverged then). In distributed training the ranks agree: if any rank's
      loss is non-finite, every rank skips, so the gradient all-reduce of DDP
      stays in step. With gradient accumulation a skipped iteration
      contributes nothing to its window.

    Gradients that overflow while the loss is finite are AMP's business:
    ``AmpOptimWrapper`` skips those steps itself.
    """

    #: whether the model honours the data samples' ``modality_mask`` (runs
    #: each encoder on present samples and masks the fusion); the analysis
    #: tools remove a modality through that path when it does
    accepts_modality_mask = True

    def __init__(self, data_preprocessor: Optional[dict] = None,
                 on_nonfinite_loss: str = 'raise', max_nonfinite_skips: int = 10,
                 init_cfg: Optional[dict] = None) -> None:
        if data_preprocessor is None:
            data_preprocessor = dict(type='MultiModalDataPreprocessor')
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if on_nonfinite_loss not in NONFINITE_POLICIES:
            raise ConfigError(f'model.on_nonfinite_loss must be one of {NONFINITE_POLICIES}, '
                              f'got {on_nonfinite_loss!r}')
        if max_nonfinite_skips < 1:
            raise ConfigError('model.max_nonfinite_skips must be >= 1, got '
                              f'{max_nonfinite_skips}')
        self.on_nonfinite_loss = on_nonfinite_loss
        self.max_nonfinite_skips = max_nonfinite_skips
        self._skips_in_a_row = 0
        self.nonfinite_skips = 0  # over the whole run, for logs and tests

    def build_encoders(self, encoders: Dict[str, Optional[dict]]) -> None:
        """``self.encoders``: one encoder per modality; ``None`` entries (which
        drop an inherited encoder) are left out."""
        encoders = {name: cfg for name, cfg in encoders.items() if cfg is not None}
        if not encoders:
            raise ConfigError(f'model.encoders: {type(self).__name__} needs at least one '
                              'encoder')
        # an encoder config may carry fine-tuning keys (peft, freeze, grad_checkpointing ...)
        self.encoders = nn.ModuleDict({name: build_fine_tuned(cfg, f'model.encoders.{name}')
                                       for name, cfg in encoders.items()})

    def check_batch_modalities(self, inputs: dict) -> None:
        """Raise :class:`ConfigError` unless the batch carries exactly the
        modalities the model encodes."""
        missing = [m for m in self.encoders if m not in inputs]
        unused = [m for m in inputs if m not in self.encoders]
        if missing or unused:
            raise ConfigError(f'the model encodes {sorted(self.encoders)} but the batch carries '
                              f'{sorted(inputs)} (missing: {missing}, not consumed: {unused}); '
                              "make the pipeline's PackMultiModalInputs(inputs=...) and "
                              'model.encoders agree')

    def modality_masks(self, inputs: dict,
                       data_samples: Optional[Sequence] = None) -> Dict[str, torch.Tensor]:
        """``{modality: BoolTensor (B,)}``, False where a sample lacks the modality.

        Read from each data sample's ``modality_mask`` (set by
        ``PackMultiModalInputs`` and the data preprocessor); a modality whose
        batch input is ``None`` is missing everywhere. Modalities present in
        every sample are left out, so the result is empty for complete data
        (the fusion modules' convention). Raises :class:`ConfigError` for a
        mask on a modality the model does not encode.
        """
        batch_size = self.batch_size(inputs, data_samples)
        masks: Dict[str, torch.Tensor] = {}
        for name in self.encoders:
            if inputs.get(name) is None:
                masks[name] = torch.zeros(batch_size, dtype=torch.bool)
        for i, sample in enumerate(data_samples or ()):
            for name, present in sample.metainfo.get('modality_mask', {}).items():
                if present:
                    continue
                if name not in self.encoders:
                    raise ConfigError(
                        f'data sample {i} has modality_mask[{name!r}]=False but the model '
                        f'encodes only {sorted(self.encoders)}; remove or drop only modalities '
                        'in model.encoders (RemoveModality/ModalityDropout modalities=..., '
                        'tools/test.py --remove-modality)')
                masks.setdefault(name, torch.ones(batch_size, dtype=torch.bool))[i] = False
        device = next((x.device for x in self._tensors(inputs)), None)
        return {name: m.to(device) if device is not None else m for name, m in masks.items()}

    @staticmethod
    def _tensors(inputs: dict) -> List[torch.Tensor]:
        out = []
        for value in inputs.values():
            if isinstance(value, torch.Tensor):
                out.append(value)
            elif isinstance(value, dict):
                out.extend(v for v in value.values() if isinstance(v, torch.Tensor))
        return out

    def batch_size(self, inputs: dict, data_samples: Optional[Sequence] = None) -> int:
        """B, from the first batch tensor, else from the data samples."""
        tensors = self._tensors(inputs)
        if tensors:
            return tensors[0].shape[0]
        if data_samples:
            return len(data_samples)
        raise ValueError('cannot tell the batch size: no modality has a batch tensor and '
                         'there are no data samples')

    def encode_present(self, inputs: dict, masks: Dict[str, torch.Tensor],
               batch_size: int) -> Dict[str, ModalityFeatures]:
        """Run each encoder on the samples that have its modality.

        Args:
            inputs: modality -> batch (Tensor (B, ...), dict of (B, ...)
                tensors, or ``None`` when no sample has it).
            masks: from :meth:`modality_masks`.
            batch_size: B.

        Returns:
            modality -> :class:`ModalityFeatures` over the whole batch: the
            rows of missing samples hold zeros (pooled, tokens, maps) and an
            all-False token mask, and no encoder ever sees a placeholder. An
            encoder whose modality no sample has is not run at all.
        """
        return {name: self._encode_present(name, enc, inputs.get(name), masks.get(name),
                                           batch_size)
                for name, enc in self.encoders.items()}

    @staticmethod
    def fuse_features(fusion: nn.Module, feats: Dict[str, ModalityFeatures],
                      masks: Dict[str, torch.Tensor]) -> torch.Tensor:
        """``fusion`` applied to encoded modalities -> (B, fusion.out_dim).

        Vector fusions get the pooled vectors and ``masks`` (modality ->
        (B,) presence); token fusions get the token sequences (a pooled-only
        encoder gives one token) with each modality's token mask, in which a
        missing sample has no real token.
        """
        if fusion.input_form == 'vector':
            return fusion({name: f.pooled for name, f in feats.items()}, masks or None)
        tokens, token_masks = {}, {}
        for name, f in feats.items():
            tokens[name] = f.tokens if f.tokens is not None else f.pooled.unsqueeze(1)
            mask = f.mask if f.tokens is not None else None
            if name in masks:
                if mask is None:
                    mask = torch.ones(tokens[name].shape[:2], dtype=torch.bool,
                                      device=tokens[name].device)
                mask = mask & masks[name].to(mask.device).unsqueeze(1)
            if mask is not None:
                token_masks[name] = mask
        return fusion.forward_pooled(tokens, token_masks or None)

    @staticmethod
    def _encode_present(name: str, encoder: nn.Module, x, present: Optional[torch.Tensor],
                        batch_size: int) -> ModalityFeatures:
        if present is None or (x is not None and bool(present.all())):
            return encoder(x)
        param = next(encoder.parameters(), None)
        device = present.device if param is None else param.device
        dtype = torch.float32 if param is None else param.dtype
        if x is None or not bool(present.any()):
            return ModalityFeatures(
                pooled=torch.zeros(batch_size, encoder.out_dim, device=device, dtype=dtype),
                tokens=torch.zeros(batch_size, 1, encoder.out_dim, device=device, dtype=dtype),
                mask=torch.zeros(batch_size, 1, dtype=torch.bool, device=device))
        idx = present.nonzero(as_tuple=True)[0]
        sub = ({k: v.index_select(0, idx.to(v.device)) for k, v in x.items()}
               if isinstance(x, dict) else x.index_select(0, idx.to(x.device)))
        feats = encoder(sub)

        def scatter(t: torch.Tensor) -> torch.Tensor:
            full = t.new_zeros((batch_size, ) + tuple(t.shape[1:]))
            return full.index_copy(0, idx.to(t.device), t)

        tokens = token_mask = None
        if feats.tokens is not None:
            tokens = scatter(feats.tokens)
            real = (feats.mask if feats.mask is not None else
                    torch.ones(feats.tokens.shape[:2], dtype=torch.bool,
                               device=feats.tokens.device))
            token_mask = scatter(real)
        maps = None if feats.maps is None else [scatter(m) for m in feats.maps]
        return ModalityFeatures(pooled=scatter(feats.pooled), tokens=tokens, mask=token_mask,
                                maps=maps)

    def train_step(self, data: Union[dict, tuple, list],
                   optim_wrapper: OptimWrapper) -> Dict[str, torch.Tensor]:
        with optim_wrapper.optim_context(self):
            data = self.data_preprocessor(data, True)
            losses = self._run_forward(data, mode='loss')
        parsed_loss, log_vars = self.parse_losses(losses)
        bad_terms = self._nonfinite_terms(log_vars)
        if not bad_terms:
            optim_wrapper.update_params(parsed_loss)
            self._skips_in_a_row = 0
            return log_vars
        return self._refuse_step(bad_terms)

    def _nonfinite_terms(self, log_vars: Dict[str, torch.Tensor]) -> Dict[str, float]:
        """Loss terms that are NaN or infinite here (or, distributed, anywhere)."""
        # 'loss' is the total; a head's only term may carry that name too
        terms = {k: v for k, v in log_vars.items() if 'loss' in k}
        bad = {k: float(v.detach()) for k, v in terms.items() if not torch.isfinite(v).all()}
        if len(bad) > 1:
            bad.pop('loss', None)  # name the terms, not their sum
        if is_distributed():
            # every rank must take the same branch, or DDP's all-reduce hangs
            flag = torch.tensor(float(bool(bad)), device=log_vars['loss'].device)
            torch_dist.all_reduce(flag, op=torch_dist.ReduceOp.MAX)
            if flag.item() and not bad:
                bad = {'(another rank)': float('nan')}
        return bad

    def _refuse_step(self, bad_terms: Dict[str, float]) -> Dict[str, torch.Tensor]:
        iteration = (MessageHub.get_current_instance().get_info('iter') or 0) + 1
        terms = ', '.join(f'{k}={v}' for k, v in bad_terms.items())
        where = f'non-finite loss at training iteration {iteration}: {terms}'
        if self.on_nonfinite_loss == 'raise':
            raise NonFiniteLossError(
                f'{where}. Training stopped before the optimizer step, so the weights and the '
                'checkpoints written so far are intact. Usual fixes: a lower learning rate, '
                'gradient clipping (optim_wrapper.clip_grad=dict(max_norm=...)), or '
                'model.on_nonfinite_loss="skip" to drop such steps')
        self._skips_in_a_row += 1
        self.nonfinite_skips += 1
        if self._skips_in_a_row >= self.max_nonfinite_skips:
            raise NonFiniteLossError(
                f'{where}; {self._skips_in_a_row} iterations in a row had a non-finite loss '
                f'(model.max_nonfinite_skips={self.max_nonfinite_skips}): the model has '
                'diverged. Resume from the last '
                'checkpoint with a lower learning rate or gradient clipping')
        print_log(f'{where}; skipped this step (model.on_nonfinite_loss="skip", '
                  f'{self.nonfinite_skips} skipped so far)', logger='current', level=30)
        return {}


__all__ = ['BaseMultiModalModel', 'NONFINITE_POLICIES']
