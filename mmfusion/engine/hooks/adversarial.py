"""Adversarial training as a hook: PGD-AT and FGSM-based fast adversarial training.

* PGD-AT (Madry et al., ICLR 2018): every training batch is replaced by its
  PGD adversary (``steps`` steps of size ``step_size`` from a random start
  in the eps-ball);
* fast AT (Wong et al., "Fast is better than free", ICLR 2020): one FGSM step
  of size ``1.25 * eps`` from a uniform random start (``attack='fgsm'``).

A hook rather than a model wrapper, so it composes with every model and
config without touching the model: the checkpoints keep the model's own keys
and load into the plain config for testing. Before each training iteration
the hook crafts the adversary on the raw batch (the same attacks as
``tools/analysis_tools/robustness.py``, :mod:`mmfusion.analysis.attacks`) and
puts it in place of the clean inputs; text modalities are perturbed in
embedding space through a forward hook that lives for that iteration only.
The adversary is crafted with the model in eval mode (no dropout noise in its
gradient, no batch-norm statistics updated by attack forwards), then the
training step runs in train mode as usual.
"""
from typing import Optional, Sequence

from mmengine.hooks import Hook

from mmfusion.errors import ConfigError
from mmfusion.registry import HOOKS

ATTACKS = ('pgd', 'fgsm')


@HOOKS.register_module()
class AdversarialTrainingHook(Hook):
    """Train on adversarial examples of the chosen modalities.

    Args:
        modalities: which inputs to perturb (together), e.g. ``['image']``.
        attack: ``'pgd'`` (PGD-AT) or ``'fgsm'`` (fast AT with random start).
        eps: budget as a fraction of each modality's range (8-bit images:
            ``8/255``); see :mod:`mmfusion.analysis.attacks`.
        steps: PGD steps (PGD only).
        step_size: PGD step, same units as eps (default ``2.5 * eps / steps``;
            fast AT uses ``1.25 * eps``).
        norm: ``'linf'`` or ``'l2'``.
        prob: the chance that a batch is replaced by its adversary (1: all;
            lower keeps some clean batches for clean accuracy).
        start_epoch: first epoch (0-based) with adversarial batches; before it
            training is clean (e.g. fine-tune a clean model).

    Input: the raw batch of each training iteration; output: the same batch
    with the chosen modalities replaced by adversarial versions.
    """

    priority = 'NORMAL'

    def __init__(self, modalities: Sequence[str], attack: str = 'pgd', eps: float = 4 / 255,
                 steps: int = 5, step_size: Optional[float] = None, norm: str = 'linf',
                 prob: float = 1.0, start_epoch: int = 0, seed: int = 0) -> None:
        if attack not in ATTACKS:
            raise ConfigError(f'AdversarialTrainingHook.attack must be one of {ATTACKS}, '
                              f'got {attack!r}')
        if not modalities:
            raise ConfigError('AdversarialTrainingHook.modalities must name at least one '
                              'modality')
        if not 0 <= prob <= 1:
            raise ConfigError(f'AdversarialTrainingHook.prob must be in [0, 1], got {prob}')
        self.modalities = list(modalities)
        self.attack, self.eps, self.steps, self.norm = attack, float(eps), int(steps), norm
        self.step_size = step_size
        self.prob, self.start_epoch, self.seed = float(prob), int(start_epoch), int(seed)
        self._embedding_ctx = None
        self._calls = 0

    def before_train_iter(self, runner, batch_idx: int, data_batch: Optional[dict] = None
                          ) -> None:
        import contextlib

        import torch

        from mmfusion.analysis.attacks import perturb_embeddings, pgd_attack

        if data_batch is None or runner.epoch < self.start_epoch:
            return
        self._calls += 1
        gen = torch.Generator().manual_seed(self.seed * 100003 + self._calls)
        if self.prob < 1 and float(torch.rand(1, generator=gen)) >= self.prob:
            return
        model = runner.model
        model = getattr(model, 'module', model)  # DDP
        if self.attack == 'fgsm':
            kwargs = dict(steps=1, step_size=self.step_size or 1.25 * self.eps,
                          random_start=True)
        else:
            kwargs = dict(steps=self.steps, step_size=self.step_size, random_start=True)
        was_training = model.training
        model.eval()
        try:
            result = pgd_attack(model, data_batch, self.modalities, self.eps, norm=self.norm,
                                seed=self.seed + self._calls, **kwargs)
        finally:
            model.train(was_training)
        # the loop passes this same dict to train_step next
        data_batch['inputs'].update(result.data['inputs'])
        if result.text_deltas:
            self._embedding_ctx = contextlib.ExitStack()
            self._embedding_ctx.enter_context(perturb_embeddings(model, result.text_deltas))

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if self._embedding_ctx is not None:
            self._embedding_ctx.close()
            self._embedding_ctx = None


__all__ = ['AdversarialTrainingHook']
