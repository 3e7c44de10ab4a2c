"""Encoders for vector (tabular) features."""
from typing import Optional, Sequence

import torch
from torch import nn

from mmfusion.registry import MODELS

from .base import BaseEncoder, ModalityFeatures


@MODELS.register_module()
class MLPEncoder(BaseEncoder):
    """A multi-layer perceptron over a feature vector per sample.

    Each hidden layer is Linear -> norm (optional) -> ReLU -> dropout; the
    last layer is a plain Linear to ``out_dim``. With ``hidden_dims=()`` it
    is a single linear projection.

    Args:
        in_dim: size of the input vectors.
        out_dim: size D of the output vector.
        hidden_dims: sizes of the hidden layers.
        dropout: dropout probability after each hidden layer.
        norm: None, ``'layernorm'`` or ``'batchnorm'`` after each hidden Linear.
        frozen: keep the weights fixed.

    Input: (B, in_dim) float. Output :class:`ModalityFeatures`: pooled
    (B, D), D = ``out_dim``; no tokens.
    """

    def __init__(self, in_dim: int, out_dim: int, hidden_dims: Sequence[int] = (),
                 dropout: float = 0.0, norm: Optional[str] = None, frozen: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        norms = dict(layernorm=nn.LayerNorm, batchnorm=nn.BatchNorm1d)
        if norm is not None and norm not in norms:
            raise ValueError(f"MLPEncoder: norm must be None, 'layernorm' or 'batchnorm', "
                             f'got {norm!r}')
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f'MLPEncoder: dropout must be in [0, 1), got {dropout}')
        layers = []
        dims = [int(in_dim)] + [int(d) for d in hidden_dims]
        for d_in, d_out in zip(dims[:-1], dims[1:]):
            layers.append(nn.Linear(d_in, d_out))
            if norm is not None:
                layers.append(norms[norm](d_out))
            layers.append(nn.ReLU(inplace=True))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(dims[-1], out_dim))
        self.model = nn.Sequential(*layers)
        self.in_dim = int(in_dim)
        self.out_dim = int(out_dim)
        if frozen:
            self.freeze()

    def forward(self, x: torch.Tensor) -> ModalityFeatures:
        if x.ndim != 2 or x.shape[-1] != self.in_dim:
            raise ValueError(f'MLPEncoder: expected vectors of shape (B, in_dim={self.in_dim}), '
                             f'got {tuple(x.shape)}')
        return ModalityFeatures(pooled=self.model(x))
