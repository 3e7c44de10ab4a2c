"""Transformer pieces for token fusion: layers, embeddings, projections and
the assembly of several modalities' tokens into one sequence."""
from collections.abc import Sequence

import torch
from torch import nn

from .checks import check_dropout, check_min_modalities, check_positive
from .masking import HasModalities, masked_tokens


def transformer_dims(owner: str, in_dims: dict[str, int], out_dim: int,
                     embed_dim: int | None, num_heads: int, ffn_dim: int | None,
                     dropout: float, **counts: int) -> tuple[int, int]:
    """The sizes (E, F) of a fusion transformer, checked.

    ``embed_dim`` E defaults to ``out_dim`` and ``ffn_dim`` F to ``4 E``.
    Raises a ValueError naming ``owner`` and the bad argument: fewer than two
    modalities in ``in_dims``, E, ``num_heads``, F or one of ``counts``
    (argument name -> value) below 1, E not divisible by ``num_heads``, or
    ``dropout`` outside [0, 1).
    """
    embed_dim = int(out_dim if embed_dim is None else embed_dim)
    ffn_dim = int(4 * embed_dim if ffn_dim is None else ffn_dim)
    check_min_modalities(owner, in_dims)
    check_positive(owner, embed_dim=embed_dim, num_heads=num_heads, ffn_dim=ffn_dim, **counts)
    if embed_dim % num_heads:
        raise ValueError(f'{owner}: embed_dim={embed_dim} must be divisible by '
                         f'num_heads={num_heads}')
    check_dropout(owner, dropout)
    return embed_dim, ffn_dim


def encoder_layer(embed_dim: int, num_heads: int, ffn_dim: int,
                  dropout: float) -> nn.TransformerEncoderLayer:
    """A pre-norm (ViT-style) GELU transformer layer on (B, N, E) tensors.

    Parameter count: ``4 E^2 + 2 E F + 9 E + F`` (E = ``embed_dim``,
    F = ``ffn_dim``): attention ``4 E^2 + 4 E``, feed-forward
    ``2 E F + F + E``, two LayerNorms ``4 E``.
    """
    return nn.TransformerEncoderLayer(embed_dim, num_heads, ffn_dim, dropout,
                                      activation='gelu', batch_first=True, norm_first=True)


def learned_embedding(*shape: int) -> nn.Parameter:
    """A learned embedding table of ``shape``, initialised as in ViT / BERT
    (truncated normal, std 0.02)."""
    return nn.Parameter(nn.init.trunc_normal_(torch.empty(*shape), std=0.02))


def output_projection(embed_dim: int, out_dim: int) -> nn.Module:
    """``Linear(E, out_dim)``, or nothing (identity) when the sizes already agree."""
    return nn.Identity() if embed_dim == out_dim else nn.Linear(embed_dim, out_dim)


def project_tokens(fusion: HasModalities, proj: nn.ModuleDict, tokens: dict[str, torch.Tensor],
                   masks: dict[str, torch.Tensor] | None, names: Sequence[str] | None = None
                   ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Project the modalities ``names`` (default: all of ``fusion``) by ``proj[name]``.

    Args:
        fusion: gives the modalities and the name in errors.
        proj: modality -> module mapping (B, N_m, D_m) to (B, N_m, E).
        tokens: modality -> Tensor (B, N_m, D_m).
        masks: optional modality -> BoolTensor (B, N_m), True for real tokens.
        names: the modalities to project.

    Returns:
        (projected, masks): modality -> Tensor (B, N_m, E), and modality ->
        BoolTensor (B, N_m). Padding is zeroed before the projection, so
        whatever it holds (even NaN) reaches neither the output nor the gradients.
    """
    owner = type(fusion).__name__
    projected, keep = {}, {}
    for name in fusion.modalities if names is None else names:
        x, keep[name] = masked_tokens(tokens[name], masks, name, owner)
        projected[name] = proj[name](x)
    return projected, keep


def concat_context(names: Sequence[str], tokens: dict[str, torch.Tensor],
                   masks: dict[str, torch.Tensor], type_embed: torch.Tensor | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """One context of the modalities ``names``: their tokens (B, N_m, E)
    concatenated to (B, S, E), with ``type_embed[i]`` (E,) added to the i-th
    modality's tokens if given, and their masks concatenated to (B, S)."""
    parts = [tokens[name] if type_embed is None else tokens[name] + type_embed[i]
             for i, name in enumerate(names)]
    return torch.cat(parts, dim=1), torch.cat([masks[name] for name in names], dim=1)
