"""Linear building blocks: MLPs, per-modality projections, normalisations."""
import itertools
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def build_mlp(dims: Sequence[int], dropout: float, act_out: bool = False) -> nn.Sequential:
    """An MLP mapping (..., dims[0]) to (..., dims[-1]).

    ``[Linear, ReLU, Dropout]`` between consecutive sizes of ``dims``, a bare
    ``Linear`` for the last pair, then a ReLU if ``act_out``.
    """
    layers = []
    for d_in, d_out in itertools.pairwise(dims[:-1]):
        layers += [nn.Linear(d_in, d_out), nn.ReLU(inplace=True), nn.Dropout(dropout)]
    layers.append(nn.Linear(dims[-2], dims[-1]))
    if act_out:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def classifier_mlp(in_dim: int, num_classes: int, hidden_dim: int = 0,
                   dropout: float = 0.0) -> nn.Sequential:
    """The classifier of the classification heads, (B, in_dim) -> (B, num_classes) logits.

    ``[Linear(in_dim, hidden_dim), ReLU]`` when ``hidden_dim`` is not 0, then
    ``Dropout`` and ``Linear(-> num_classes)``. Unlike :func:`build_mlp` the
    dropout also precedes a single Linear layer, as the heads' configs expect.
    """
    layers: list[nn.Module] = []
    if hidden_dim:
        layers += [nn.Linear(in_dim, hidden_dim), nn.ReLU(inplace=True)]
        in_dim = hidden_dim
    layers += [nn.Dropout(dropout), nn.Linear(in_dim, num_classes)]
    return nn.Sequential(*layers)


def modality_linears(in_dims: dict[str, int], out_dims: int | dict[str, int]) -> nn.ModuleDict:
    """One ``nn.Linear(D_m, out)`` per modality, in ``in_dims`` order.

    ``out_dims`` is one output size for every modality or a dict modality -> size.
    """
    return nn.ModuleDict({
        name: nn.Linear(dim, out_dims[name] if isinstance(out_dims, dict) else out_dims)
        for name, dim in in_dims.items()
    })


def power_l2_normalize(x: torch.Tensor, eps: float) -> torch.Tensor:
    """Signed square root ``sign(x) * (sqrt(|x| + eps) - sqrt(eps))``, then L2
    normalisation over the last dimension (MFB, MFH, BLOCK); same shape as ``x``.

    The power normalisation tames the large magnitudes a product of
    projections produces; ``eps`` keeps its gradient finite at 0 and
    subtracting ``sqrt(eps)`` keeps the map continuous there.
    """
    x = torch.sign(x) * (torch.sqrt(x.abs() + eps) - math.sqrt(eps))
    return F.normalize(x, p=2, dim=-1)
