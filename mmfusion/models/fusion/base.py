"""The two fusion interfaces: one for pooled vectors, one for token sequences.

Any head can take any fusion of the form the model is configured for, because
every fusion module exposes ``out_dim`` and one of the two ``forward``
signatures below. The model reads ``input_form`` to decide which view of the
encoder outputs (:class:`~mmfusion.models.encoders.base.ModalityFeatures`) to
pass in. ``ModalityFeatures`` is importable from here too, so that fusion
modules reach the encoders' output type through this file only.
"""

import torch
from mmengine.model import BaseModule

from ..encoders.base import ModalityFeatures
from ..layers import masked_mean

__all__ = ['BaseTokenFusion', 'BaseVectorFusion', 'ModalityFeatures']


class _ModalityFusion(BaseModule):
    """What the vector and token interfaces share: ``in_dims``, ``modalities``
    (in ``in_dims`` order), ``out_dim`` and the input check."""
    # What the error for a bad in_dims calls the per-modality size.
    _size_name = 'feature size'

    def __init__(self, in_dims: dict[str, int], out_dim: int, init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        if not isinstance(in_dims, dict) or not in_dims:
            raise ValueError(f'{type(self).__name__}: in_dims must be a non-empty dict '
                             f'of modality -> {self._size_name}, got {in_dims!r}')
        self.in_dims = dict(in_dims)
        self.modalities = list(in_dims)
        self.out_dim = int(out_dim)

    def check_inputs(self, inputs: dict[str, torch.Tensor]) -> None:
        """Raise a clear error when a configured modality is absent or has the wrong size."""
        for name, dim in self.in_dims.items():
            if name not in inputs:
                raise KeyError(f'{type(self).__name__} expects modality {name!r}, '
                               f'got only {sorted(inputs)}')
            self._check_size(name, dim, inputs[name])

    def _check_size(self, name: str, dim: int, x: torch.Tensor) -> None:
        raise NotImplementedError(f'{type(self).__name__} must define _check_size')


class BaseVectorFusion(_ModalityFusion):
    """Fuses one pooled vector per modality into one vector.

    Args:
        in_dims: modality name -> feature size D_m, e.g. ``dict(image=512, text=128)``.
        out_dim: size of the fused vector.

    ``forward(feats, mask=None)``:
        feats: modality -> Tensor (B, D_m).
        mask: optional modality -> BoolTensor (B,), False where that modality
            is missing for a sample; modalities absent from ``mask`` are
            present. Each subclass documents what it does with a missing one.
        returns: Tensor (B, out_dim).
    """
    input_form = 'vector'

    def _check_size(self, name: str, dim: int, x: torch.Tensor) -> None:
        if x.shape[-1] != dim:
            raise ValueError(f'{type(self).__name__}: in_dims[{name!r}]={dim} but the '
                             f'{name} features have size {x.shape[-1]}')


class BaseTokenFusion(_ModalityFusion):
    """Fuses token sequences of several modalities.

    Args:
        in_dims: modality name -> token size D_m.
        out_dim: size of the fused tokens.

    ``forward(tokens, masks=None)``:
        tokens: modality -> Tensor (B, N_m, D_m).
        masks: optional modality -> BoolTensor (B, N_m), True for real tokens;
            a modality absent from ``masks`` has only real tokens.
        returns: Tensor (B, N, out_dim), the fused tokens.

    ``forward_pooled(tokens, masks=None)`` returns the pooled view (B, out_dim)
    that classification and VQA heads take; by default the mean of the fused
    tokens, overridden where a module has a natural summary token.
    """
    input_form = 'token'
    _size_name = 'token size'

    def _check_size(self, name: str, dim: int, x: torch.Tensor) -> None:
        if x.ndim != 3 or x.shape[-1] != dim:
            raise ValueError(f'{type(self).__name__}: expected {name} tokens of shape '
                             f'(B, N, {dim}), got {tuple(x.shape)}')

    def forward_pooled(self, tokens: dict[str, torch.Tensor],
                       masks: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """The pooled view of the fused tokens, (B, out_dim): their mean."""
        return masked_mean(self(tokens, masks), None)
