"""What every mmfusion model does the same way: the guarded training step."""
from typing import Dict, Optional, Union

import torch
import torch.distributed as torch_dist
import torch.nn as nn
from mmengine.dist import is_distributed
from mmengine.logging import MessageHub, print_log
from mmengine.model import BaseModel
from mmengine.optim import OptimWrapper

from mmfusion.errors import ConfigError, NonFiniteLossError
from mmfusion.registry import MODELS

NONFINITE_POLICIES = ('raise', 'skip')


class BaseMultiModalModel(BaseModel):
    """MMEngine's ``BaseModel`` whose training step refuses a non-finite loss.

    Also what every mmfusion model shares: ``MultiModalDataPreprocessor`` as
    the default data preprocessor, :meth:`build_encoders` and
    :meth:`check_batch_modalities`.

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
        self.encoders = nn.ModuleDict({name: MODELS.build(cfg) for name, cfg in encoders.items()})

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
