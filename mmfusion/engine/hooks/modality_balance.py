"""Modality balancing: OGM-GE, on-the-fly gradient modulation with
generalisation enhancement (Peng et al., CVPR 2022)."""
import math
from functools import partial
from typing import Dict, List, Optional

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmfusion.errors import ConfigError
from mmfusion.registry import HOOKS

KEY = 'custom_hooks[OGMGEHook]'


def ogm_ge_coefficients(scores: Dict[str, float], alpha: float,
                        eps: float = 1e-8) -> Dict[str, float]:
    """OGM-GE's gradient coefficients from the modalities' summed scores.

    Peng et al., "Balanced Multimodal Learning via On-the-fly Gradient
    Modulation", CVPR 2022, eq. (9)-(10): with s^u the batch sum of the
    probability the model gives the true class from modality u alone,

        rho^u = s^u / s^{u'},   k^u = 1 - tanh(alpha * rho^u) if rho^u > 1 else 1,

    so only the dominant modality's gradient is scaled down. With more than
    two modalities, s^{u'} is the mean score of the others (for two it is
    the paper's ratio).

    Args:
        scores: modality -> summed score s^u (>= 0), at least two.
        alpha: the modulation strength alpha (> 0).

    Returns:
        modality -> k^u in (0, 1].
    """
    coeffs = {}
    for name, score in scores.items():
        others = [s for other, s in scores.items() if other != name]
        ratio = float(score) / (sum(others) / len(others) + eps)
        coeffs[name] = 1.0 - math.tanh(alpha * ratio) if ratio > 1 else 1.0
    return coeffs


@HOOKS.register_module()
class OGMGEHook(Hook):
    """OGM-GE: slow down the encoder of the modality that dominates, every step.

    Multimodal models learn the easier modality first and under-train the
    other (the audio-visual quick-start: the image alone reaches ~60 %, the
    sound alone chance, and seeds disagree). OGM-GE measures each modality's
    contribution on the batch (:func:`ogm_ge_coefficients`), scales the
    gradient of the dominant modality's encoder by k^u < 1, and adds
    Gaussian noise with the gradient's own standard deviation
    (generalisation enhancement, GE) to each encoder's gradient.

    The model computes the per-modality scores while it computes the loss
    (``MultiModalClassifier.modality_scores``: a unimodal auxiliary head if
    configured, else the fusion module with the other modalities masked as
    missing, so any vector or token fusion works) and logs them as
    ``contrib_<modality>``. This hook logs ``ogm_coeff_<modality>`` and
    ``ogm_ratio_<modality>`` each iteration.

    Implemented as gradient hooks on the encoder parameters (they modulate
    each backward's gradient before it is accumulated), because MMEngine has
    no hook point between backward and the optimizer step; this keeps
    gradient accumulation and DDP's all-reduce correct. Like the paper's
    code, the modulation and noise apply to weight tensors (conv and linear
    weights, ``ndim >= 2``), not to biases and norm parameters.

    Args:
        alpha: modulation strength (the paper uses 0.1-1).
        generalization_enhancement: add the GE noise (False: plain OGM).
        begin_epoch, end_epoch: modulate in epochs [begin, end) (the paper
            stops modulating late in training); ``None``: to the end.

    Raises :class:`ConfigError` at the start of training for a model with
    fewer than two modalities or without a classification head.
    """
    priority = 'NORMAL'

    def __init__(self, alpha: float = 0.5, generalization_enhancement: bool = True,
                 begin_epoch: int = 0, end_epoch: Optional[int] = None) -> None:
        if not alpha > 0:
            raise ConfigError(f'{KEY}: alpha must be > 0, got {alpha!r}')
        self.alpha = float(alpha)
        self.generalization_enhancement = bool(generalization_enhancement)
        self.begin_epoch = int(begin_epoch)
        self.end_epoch = end_epoch
        self.coeffs: Dict[str, float] = {}
        self.ratios: Dict[str, float] = {}
        self._active = False
        self._handles: List = []

    def before_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        self.attach(model)

    def attach(self, model: torch.nn.Module) -> None:
        """Enable the model's contribution scores and hook its encoders."""
        if not hasattr(model, 'enable_modality_contribution'):
            raise ConfigError(f'{KEY} needs a model that scores each modality '
                              f'(MultiModalClassifier), got {type(model).__name__}')
        model.enable_modality_contribution(KEY)
        self.detach()
        self._handles.append(model.register_forward_hook(self._after_forward))
        for name, encoder in model.encoders.items():
            for param in encoder.parameters():
                if param.requires_grad and param.ndim >= 2:
                    self._handles.append(param.register_hook(partial(self._modulate, name)))
        self._model = model
        self._active = True

    def detach(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def before_train_epoch(self, runner) -> None:
        self._active = (runner.epoch >= self.begin_epoch
                        and (self.end_epoch is None or runner.epoch < self.end_epoch))

    def _after_forward(self, model, args, output) -> None:
        """Coefficients for the backward to come, from this forward's scores."""
        self.coeffs, self.ratios = {}, {}
        scores = getattr(model, 'last_modality_scores', None)
        if not (self._active and model.training and scores):
            return
        values = {name: float(s) for name, s in scores.items()}
        self.coeffs = ogm_ge_coefficients(values, self.alpha)
        for name, value in values.items():
            others = [v for other, v in values.items() if other != name]
            self.ratios[name] = value / (sum(others) / len(others) + 1e-8)

    def _modulate(self, modality: str, grad: torch.Tensor) -> Optional[torch.Tensor]:
        coeff = self.coeffs.get(modality)
        if coeff is None:
            return None
        out = grad * coeff
        if self.generalization_enhancement and grad.numel() > 1:
            out = out + torch.randn_like(grad) * (grad.std() + 1e-8)
        return out

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        for name, coeff in self.coeffs.items():
            runner.message_hub.update_scalar(f'train/ogm_coeff_{name}', coeff)
            runner.message_hub.update_scalar(f'train/ogm_ratio_{name}', self.ratios[name])

    def after_train(self, runner) -> None:
        self.detach()


__all__ = ['OGMGEHook', 'ogm_ge_coefficients']
