"""Early fusion by concatenation, and helpers shared by the vector fusions
(missing modalities, MLP)."""
import itertools
from collections.abc import Callable, Sequence

import torch
from torch import nn

from mmfusion.registry import MODELS

from .base import BaseVectorFusion, check_dropout


def fill_missing(x: torch.Tensor, present: torch.Tensor | None,
                 fill: float, name: str, owner: str) -> torch.Tensor:
    """Replace the rows of ``x`` (B, D) whose ``present`` (B,) entry is False by ``fill``.

    ``torch.where`` rather than a multiplication, so that NaN or inf in the
    features of a missing sample cannot leak into the output or the gradient.
    """
    if present is None:
        return x
    if present.shape != x.shape[:1]:
        raise ValueError(f'{owner}: mask[{name!r}] must have shape ({x.shape[0]},), '
                         f'got {tuple(present.shape)}')
    present = present.to(device=x.device, dtype=torch.bool).unsqueeze(-1)
    return torch.where(present, x, torch.full_like(x, fill))


def masked_outputs(fusion: BaseVectorFusion, feats: dict[str, torch.Tensor],
                   mask: dict[str, torch.Tensor] | None,
                   fn: Callable[[str, torch.Tensor], torch.Tensor], fill: float = 0.0,
                   names: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
    """``{m: fn(m, x_m)}`` for the modalities ``names`` (default: all, in order).

    For a sample where modality m is missing, its input is zeroed before
    ``fn`` (the weight gradient multiplies the input, so NaN there would reach
    it) and its output is replaced by ``fill`` (so a bias does not count either).
    """
    owner = type(fusion).__name__
    mask = mask or {}
    outputs = {}
    for name in fusion.modalities if names is None else names:
        present = mask.get(name)
        x = fill_missing(feats[name], present, 0.0, name, owner)
        outputs[name] = fill_missing(fn(name, x), present, fill, name, owner)
    return outputs


def build_mlp(dims: Sequence[int], dropout: float, act_out: bool = False) -> nn.Sequential:
    """``[Linear, ReLU, Dropout]`` between consecutive sizes of ``dims``, a bare
    ``Linear`` for the last pair, then a ReLU if ``act_out``."""
    layers = []
    for d_in, d_out in itertools.pairwise(dims[:-1]):
        layers += [nn.Linear(d_in, d_out), nn.ReLU(inplace=True), nn.Dropout(dropout)]
    layers.append(nn.Linear(dims[-2], dims[-1]))
    if act_out:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


@MODELS.register_module()
class ConcatFusion(BaseVectorFusion):
    """Early fusion: concatenate the modality vectors, then project.

    The vectors are concatenated in ``in_dims`` order into one vector of size
    ``D = sum_m D_m``, which an MLP maps to ``out_dim``:
    ``[Linear, ReLU, Dropout] * len(hidden_dims)`` followed by
    ``Linear(-> out_dim)`` and, if ``act_out``, a final ReLU. With a single
    modality this is the unimodal baseline through the same code path.

    Args:
        in_dims: modality -> feature size D_m, e.g. ``dict(image=512, text=128)``.
        out_dim: size of the fused vector.
        hidden_dims: sizes of the hidden layers of the MLP; ``()`` means a single
            Linear layer.
        dropout: dropout probability after each hidden layer.
        act_out: apply ReLU to the output.

    Inputs: ``feats`` and ``mask`` as in :class:`BaseVectorFusion`.

    Returns:
        Tensor (B, out_dim).

    Missing modality: that modality's vector is replaced by zeros for that
    sample (its features, even NaN, never reach the output).

    Parameter count: ``sum_l (d_l + 1) * d_{l+1}`` over the layer sizes
    ``d = [sum_m D_m, *hidden_dims, out_dim]``.
    """

    def __init__(self,
                 in_dims: dict[str, int],
                 out_dim: int,
                 hidden_dims: Sequence[int] = (),
                 dropout: float = 0.0,
                 act_out: bool = True,
                 init_cfg: dict | None = None) -> None:
        super().__init__(in_dims, out_dim, init_cfg=init_cfg)
        check_dropout(type(self).__name__, dropout)
        self.hidden_dims = tuple(int(h) for h in hidden_dims)
        self.act_out = act_out
        self.mlp = build_mlp([sum(self.in_dims.values()), *self.hidden_dims, self.out_dim],
                             dropout, act_out)

    def forward(self, feats: dict[str, torch.Tensor],
                mask: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        self.check_inputs(feats)
        mask = mask or {}
        parts = [
            fill_missing(feats[name], mask.get(name), 0.0, name, type(self).__name__)
            for name in self.modalities
        ]
        return self.mlp(torch.cat(parts, dim=-1))
