"""Gated and multiplicative fusion of pooled vectors: GMU, FiLM, multiplicative interactions."""
import math

import torch
import torch.nn.functional as F
from torch import nn

from mmfusion.registry import MODELS

from ..layers import (
    check_min_modalities,
    check_positive,
    masked_outputs,
    masked_softmax,
    modality_linears,
    present_mask,
    zero_missing,
)
from .base import BaseVectorFusion


@MODELS.register_module()
class GMUFusion(BaseVectorFusion):
    """Gated Multimodal Unit (GMU).

    Arevalo et al., "Gated Multimodal Units for Information Fusion", ICLR 2017
    workshop. Each modality is mapped to a candidate ``h_m = tanh(W_m x_m + b_m)``
    of size ``out_dim``; gates computed from the concatenation
    ``x = [x_1; x_2; ...]`` of all the inputs choose, per sample and per unit,
    how much of each candidate goes into the output ``h = sum_m z_m * h_m``.
    (The paper's notation omits the biases; they are included here.)

    * Two modalities, as in the paper: a single gate
      ``z = sigmoid(W_z x + b_z)`` and ``h = z * h_1 + (1 - z) * h_2``
      (modality 1 is the first in ``in_dims``).
    * More modalities: one gate logit per modality and unit,
      ``z = softmax_m(W_z x + b_z)``. The paper's figure of the N-modality GMU
      uses an independent sigmoid per modality; the softmax is used here
      because it keeps the output a convex combination of the candidates, as
      in the bimodal unit (which it reduces to: ``softmax([a, 0])_1 =
      sigmoid(a)``), and because it can be renormalised over the modalities
      that are present.

    Args:
        in_dims: modality -> feature size D_m; at least two modalities.
        out_dim: size of the fused vector (the candidates' size).

    Inputs: ``feats`` and ``mask`` as in :class:`BaseVectorFusion`.

    Returns:
        Tensor (B, out_dim), each entry in ``[-1, 1]``.

    Missing modality: its input is replaced by zeros in the gate's
    concatenation, its gate is set to 0 and the gates are renormalised over the
    modalities present for that sample (with two modalities the present one
    gets gate 1, so ``h`` is its candidate). If every modality of a sample is
    missing, all gates are 0 and the output is zero. Features of a missing
    sample (even NaN) never reach the output.

    Attributes:
        last_gates: the gates of the last forward pass, Tensor (B, M, out_dim),
            detached, modalities in ``in_dims`` order; they sum to 1 over the
            present modalities. ``None`` before the first call.

    Parameter count, with ``G = 1`` for two modalities and ``G = M`` for more:
    ``sum_m (D_m + 1) * out_dim + (sum_m D_m + 1) * G * out_dim``.
    """

    def __init__(self,
                 in_dims: dict[str, int],
                 out_dim: int,
                 init_cfg: dict | None = None) -> None:
        super().__init__(in_dims, out_dim, init_cfg=init_cfg)
        check_min_modalities(type(self).__name__, self.in_dims, baseline='ConcatFusion')
        self.proj = modality_linears(self.in_dims, self.out_dim)
        # Two modalities need one gate (the second is 1 - z); more need one each.
        self.num_gates = 1 if len(self.modalities) == 2 else len(self.modalities)
        self.gate = nn.Linear(sum(self.in_dims.values()), self.num_gates * self.out_dim)
        self.last_gates: torch.Tensor | None = None

    def forward(self, feats: dict[str, torch.Tensor],
                mask: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        self.check_inputs(feats)
        inputs = list(zero_missing(self, feats, mask).values())
        if self.num_gates == 1 and not mask:
            # The paper's bimodal unit as written, h_2 + z * (h_1 - h_2): the
            # general path below (stacked candidates, a softmax over [a, 0])
            # keeps 1.6x the activations for backward.
            h1, h2 = (torch.tanh(self.proj[name](x)) for name, x in zip(self.modalities, inputs))
            z = torch.sigmoid(self.gate(torch.cat(inputs, dim=-1)))
            with torch.no_grad():
                self.last_gates = torch.stack([z, 1 - z], dim=1)
            return h2 + z * (h1 - h2)
        present = present_mask(self, feats, mask)  # (B, M)
        candidates = torch.stack(
            [torch.tanh(self.proj[name](x)) for name, x in zip(self.modalities, inputs)],
            dim=1)  # (B, M, out_dim)

        logits = self.gate(torch.cat(inputs, dim=-1))
        logits = logits.view(-1, self.num_gates, self.out_dim)
        if self.num_gates == 1:
            # softmax([a, 0]) = [sigmoid(a), 1 - sigmoid(a)]: the paper's bimodal gate.
            logits = torch.cat([logits, torch.zeros_like(logits)], dim=1)
        gates = masked_softmax(logits, present.unsqueeze(-1), dim=1)  # (B, M, out_dim)
        self.last_gates = gates.detach()
        return (gates * candidates).sum(dim=1)


@MODELS.register_module()
class FiLMFusion(BaseVectorFusion):
    """Feature-wise Linear Modulation (FiLM) of one modality by the others.

    Perez et al., "FiLM: Visual Reasoning with a General Conditioning Layer",
    AAAI 2018. The ``target`` modality is projected to ``h = W_t x_t + b_t``
    (size H = ``hidden_dim``) and modulated feature-wise by the conditioning
    modalities (all the others), then ReLU'd, as in the paper's FiLM-ed
    residual blocks, and projected to ``out_dim``:

    ``out = W_o ReLU(gamma * h + beta) + b_o``, with
    ``gamma = 1 + sum_c dgamma_c`` and ``beta = sum_c beta_c``, where
    ``[dgamma_c, beta_c] = W_c x_c + b_c`` (a Linear to 2H) for each
    conditioning modality c. ``gamma`` is predicted as an offset from 1 so
    that a conditioning modality that contributes nothing leaves ``h``
    unchanged, and several conditioning modalities add up.

    Args:
        in_dims: modality -> feature size D_m; at least two modalities.
        out_dim: size of the fused vector.
        target: name of the modulated modality; every other modality conditions it.
        hidden_dim: size H of the modulated features; ``None`` means ``out_dim``.

    Inputs: ``feats`` and ``mask`` as in :class:`BaseVectorFusion`.

    Returns:
        Tensor (B, out_dim).

    Missing modality: a missing conditioning modality contributes the identity
    modulation (``dgamma_c = 0``, ``beta_c = 0``) for that sample, so with all
    of them missing the output is ``W_o ReLU(W_t x_t + b_t) + b_o``. A missing
    target is replaced by zeros, so ``h = b_t`` and the output
    ``W_o ReLU(gamma * b_t + beta) + b_o`` depends on the conditioning
    modalities only. Features of a missing sample (even NaN) never reach the
    output.

    Parameter count, with D_t the target's size and c the conditioning modalities:
    ``(D_t + 1) * H + sum_c (D_c + 1) * 2 * H + (H + 1) * out_dim``.
    """

    def __init__(self,
                 in_dims: dict[str, int],
                 out_dim: int,
                 target: str,
                 hidden_dim: int | None = None,
                 init_cfg: dict | None = None) -> None:
        super().__init__(in_dims, out_dim, init_cfg=init_cfg)
        if len(self.in_dims) < 2:
            raise ValueError(f'FiLMFusion needs a target and at least one conditioning '
                             f'modality, got in_dims with {len(self.in_dims)}: '
                             f'{sorted(self.in_dims)}')
        if target not in self.in_dims:
            raise ValueError(f'FiLMFusion: target={target!r} is not one of the modalities '
                             f'in in_dims {sorted(self.in_dims)}')
        hidden_dim = self.out_dim if hidden_dim is None else int(hidden_dim)
        check_positive(type(self).__name__, hidden_dim=hidden_dim)
        self.target = target
        self.conditioners = [name for name in self.modalities if name != target]
        self.hidden_dim = hidden_dim
        self.target_proj = nn.Linear(self.in_dims[target], hidden_dim)
        self.film = nn.ModuleDict({name: nn.Linear(self.in_dims[name], 2 * hidden_dim)
                                   for name in self.conditioners})
        self.out = nn.Linear(hidden_dim, self.out_dim)

    def forward(self, feats: dict[str, torch.Tensor],
                mask: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        self.check_inputs(feats)
        h = self.target_proj(zero_missing(self, feats, mask, [self.target])[self.target])
        gamma = torch.ones_like(h)
        beta = torch.zeros_like(h)
        # Zeros after the Linear too, so that its bias is not a modulation either.
        films = masked_outputs(self, feats, mask, lambda name, x: self.film[name](x),
                               names=self.conditioners)
        for film in films.values():
            d_gamma, d_beta = film.chunk(2, dim=-1)
            gamma = gamma + d_gamma
            beta = beta + d_beta
        return self.out(F.relu(gamma * h + beta))


@MODELS.register_module()
class MultiplicativeInteractionFusion(BaseVectorFusion):
    """Multiplicative interaction (MI) between two modalities.

    Jayakumar et al., "Multiplicative Interactions and Where to Find Them",
    ICLR 2020: ``f(x, z) = z^T W x + z^T U + V x + b`` with a 3-D weight
    tensor W, computed in the paper's hypernetwork view: the ``context``
    modality z generates the weights of a linear layer applied to the other
    modality x, ``f = W'(z) x + b'(z)``, where ``W'(z) = z^T W + V`` and
    ``b'(z) = z^T U + b`` are two Linear layers of z.

    ``mode`` picks the form of ``W'(z)`` (the paper's variants):

    * ``'matrix'``: a full ``(out_dim, D_x)`` matrix (the full bilinear form);
    * ``'vector'``: a diagonal matrix, ``f = w'(z) * x + b'(z)`` (feature-wise
      gating); needs ``out_dim == D_x``;
    * ``'scalar'``: a multiple of the identity, ``f = s(z) x + b'(z)``; needs
      ``out_dim == D_x``.

    In ``'matrix'`` mode the weight generator is initialised with a bound of
    ``1 / sqrt(D_z * D_x)`` (bias ``1 / sqrt(D_x)``) instead of nn.Linear's
    ``1 / sqrt(D_z)``, so that ``W'(z) x`` starts at the scale of an
    ``nn.Linear(D_x, out_dim)`` instead of growing with ``D_x``.

    Args:
        in_dims: exactly two modalities -> feature size.
        out_dim: size of the fused vector.
        context: the modality z that generates the weights; ``None`` means the
            second modality of ``in_dims``. The other one is the input x.
        mode: ``'matrix'``, ``'vector'`` or ``'scalar'``.
        max_params: refuse to build a module with more parameters than this
            (the full 'matrix' form has ``(D_z + 1) * (D_x + 1) * out_dim``).

    Inputs:
        feats: ``{x: (B, D_x), context: (B, D_z)}``.
        mask: optional modality -> BoolTensor (B,), False where the modality is
            missing for a sample; modalities absent from ``mask`` are present.

    Returns:
        Tensor (B, out_dim).

    Missing modality: the missing vector is replaced by zeros for that sample,
    which removes every term it appears in: a missing x gives ``b'(z) = z^T U + b``;
    a missing context gives ``V x + b``, a plain linear layer of x; both
    missing give ``b``. Features of a missing sample (even NaN) never reach
    the output.

    Parameter count, with ``R = D_x * out_dim`` ('matrix'), ``D_x`` ('vector')
    or ``1`` ('scalar'): ``(D_z + 1) * (R + out_dim)``.
    """

    MODES = ('matrix', 'vector', 'scalar')

    def __init__(self,
                 in_dims: dict[str, int],
                 out_dim: int,
                 context: str | None = None,
                 mode: str = 'matrix',
                 max_params: int = 50_000_000,
                 init_cfg: dict | None = None) -> None:
        super().__init__(in_dims, out_dim, init_cfg=init_cfg)
        if len(self.in_dims) != 2:
            raise ValueError(f'MultiplicativeInteractionFusion fuses exactly 2 modalities, '
                             f'got in_dims with {len(self.in_dims)}: {sorted(self.in_dims)}')
        context = self.modalities[1] if context is None else context
        if context not in self.in_dims:
            raise ValueError(f'MultiplicativeInteractionFusion: context={context!r} is not '
                             f'one of the modalities in in_dims {sorted(self.in_dims)}')
        if mode not in self.MODES:
            raise ValueError(f'MultiplicativeInteractionFusion: mode must be one of '
                             f'{self.MODES}, got {mode!r}')
        self.context = context
        self.input = next(name for name in self.modalities if name != context)
        self.mode = mode
        d_x, d_z = self.in_dims[self.input], self.in_dims[context]
        if mode != 'matrix' and self.out_dim != d_x:
            raise ValueError(f'MultiplicativeInteractionFusion: mode={mode!r} keeps the size '
                             f'of the input {self.input!r}, so out_dim must equal '
                             f'in_dims[{self.input!r}]={d_x}, got out_dim={self.out_dim}')
        rows = {'matrix': d_x * self.out_dim, 'vector': d_x, 'scalar': 1}[mode]
        count = (d_z + 1) * (rows + self.out_dim)
        if count > max_params:
            raise ValueError(f'MultiplicativeInteractionFusion: mode={mode!r} with '
                             f'D_x={d_x}, D_z={d_z}, out_dim={self.out_dim} needs {count:,} '
                             f'parameters, more than max_params={max_params:,}; use '
                             f"mode='vector' or 'scalar', smaller features, or raise "
                             f'max_params')
        self.weight_gen = nn.Linear(d_z, rows)  # W'(z) = z^T W + V
        self.bias_gen = nn.Linear(d_z, self.out_dim)  # b'(z) = z^T U + b
        if mode == 'matrix':
            nn.init.uniform_(self.weight_gen.weight, -1 / math.sqrt(d_z * d_x),
                             1 / math.sqrt(d_z * d_x))
            nn.init.uniform_(self.weight_gen.bias, -1 / math.sqrt(d_x), 1 / math.sqrt(d_x))

    def forward(self, feats: dict[str, torch.Tensor],
                mask: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        self.check_inputs(feats)
        inputs = zero_missing(self, feats, mask, [self.input, self.context])
        x, z = inputs[self.input], inputs[self.context]
        weight = self.weight_gen(z)
        bias = self.bias_gen(z)
        if self.mode == 'matrix':
            weight = weight.view(-1, self.out_dim, x.shape[-1])
            return torch.bmm(weight, x.unsqueeze(-1)).squeeze(-1) + bias
        # 'vector': (B, D_x) diagonal; 'scalar': (B, 1) broadcast over x.
        return weight * x + bias
