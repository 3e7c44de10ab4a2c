"""The two fusion interfaces: one for pooled vectors, one for token sequences.

Any head can take any fusion of the form the model is configured for, because
every fusion module exposes ``out_dim`` and one of the two ``forward``
signatures below. The model reads ``input_form`` to decide which view of the
encoder outputs (:class:`~mmfusion.models.encoders.base.ModalityFeatures`) to
pass in.
"""

import torch
from mmengine.model import BaseModule
from torch import nn

from ..encoders.base import masked_mean


def check_dropout(owner: str, dropout: float) -> None:
    """Raise a ValueError naming ``owner`` unless ``0 <= dropout < 1``."""
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f'{owner}: dropout must be in [0, 1), got {dropout}')


def check_positive(owner: str, integer: bool = False, **values) -> None:
    """Raise a ValueError for the first of ``values`` (argument name -> value) below 1.

    With ``integer=True`` a value that is not a whole number is refused too,
    and the message says so.
    """
    for arg, value in values.items():
        if integer and (int(value) != value or value < 1):
            raise ValueError(f'{owner}: {arg} must be an integer >= 1, got {value!r}')
        if value < 1:
            raise ValueError(f'{owner}: {arg} must be >= 1, got {value}')


def check_min_modalities(owner: str, in_dims: dict[str, int],
                         baseline: str | None = None) -> None:
    """Raise a ValueError unless ``in_dims`` has at least 2 modalities.

    ``baseline`` names the module to use instead for a single modality, if any.
    """
    if len(in_dims) < 2:
        hint = f'; use {baseline} for a unimodal baseline' if baseline else ''
        raise ValueError(f'{owner} fuses at least 2 modalities, got in_dims with '
                         f'{len(in_dims)}: {sorted(in_dims)}{hint}')


def modality_linears(in_dims: dict[str, int], out_dims: int | dict[str, int]) -> nn.ModuleDict:
    """One ``nn.Linear(D_m, out)`` per modality, in ``in_dims`` order.

    ``out_dims`` is one output size for every modality or a dict modality -> size.
    """
    return nn.ModuleDict({
        name: nn.Linear(dim, out_dims[name] if isinstance(out_dims, dict) else out_dims)
        for name, dim in in_dims.items()
    })


class BaseVectorFusion(BaseModule):
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

    def __init__(self, in_dims: dict[str, int], out_dim: int, init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        if not isinstance(in_dims, dict) or not in_dims:
            raise ValueError(f'{type(self).__name__}: in_dims must be a non-empty dict '
                             f'of modality -> feature size, got {in_dims!r}')
        self.in_dims = dict(in_dims)
        self.modalities = list(in_dims)
        self.out_dim = int(out_dim)

    def check_inputs(self, feats: dict[str, torch.Tensor]) -> None:
        """Raise a clear error when a configured modality is absent or has the wrong size."""
        for name, dim in self.in_dims.items():
            if name not in feats:
                raise KeyError(f'{type(self).__name__} expects modality {name!r}, '
                               f'got only {sorted(feats)}')
            if feats[name].shape[-1] != dim:
                raise ValueError(f'{type(self).__name__}: in_dims[{name!r}]={dim} but the '
                                 f'{name} features have size {feats[name].shape[-1]}')


class BaseTokenFusion(BaseModule):
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

    def __init__(self, in_dims: dict[str, int], out_dim: int, init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        if not isinstance(in_dims, dict) or not in_dims:
            raise ValueError(f'{type(self).__name__}: in_dims must be a non-empty dict '
                             f'of modality -> token size, got {in_dims!r}')
        self.in_dims = dict(in_dims)
        self.modalities = list(in_dims)
        self.out_dim = int(out_dim)

    def check_inputs(self, tokens: dict[str, torch.Tensor]) -> None:
        """Raise a clear error when a configured modality is absent or has the wrong size."""
        for name, dim in self.in_dims.items():
            if name not in tokens:
                raise KeyError(f'{type(self).__name__} expects modality {name!r}, '
                               f'got only {sorted(tokens)}')
            t = tokens[name]
            if t.ndim != 3 or t.shape[-1] != dim:
                raise ValueError(f'{type(self).__name__}: expected {name} tokens of shape '
                                 f'(B, N, {dim}), got {tuple(t.shape)}')

    def forward_pooled(self, tokens: dict[str, torch.Tensor],
                       masks: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        return masked_mean(self(tokens, masks), None)
