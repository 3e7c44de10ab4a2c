"""Transformer fusion of token sequences: one joint stream (VisualBERT) and
per-modality streams that meet through shared bottleneck tokens (MBT)."""
import torch
from torch import nn

from mmfusion.registry import MODELS

from ..layers import (
    encoder_layer,
    key_padding_bias,
    learned_embedding,
    modality_linears,
    output_projection,
    project_tokens,
    transformer_dims,
)
from .base import BaseTokenFusion


def _positions_per_modality(max_positions: int | dict[str, int], modalities: list[str],
                            owner: str) -> dict[str, int]:
    if isinstance(max_positions, int):
        max_positions = {name: max_positions for name in modalities}
    if not isinstance(max_positions, dict) or set(max_positions) != set(modalities):
        raise ValueError(f'{owner}: max_positions must be an int or a dict with exactly the '
                         f'modalities {sorted(modalities)}, got {max_positions!r}')
    for name, value in max_positions.items():
        if value < 1:
            raise ValueError(f'{owner}: max_positions[{name!r}] must be >= 1, got {value}')
    return {name: int(max_positions[name]) for name in modalities}


def _check_lengths(owner: str, tokens: dict[str, torch.Tensor],
                   max_positions: dict[str, int]) -> None:
    for name, max_len in max_positions.items():
        if tokens[name].shape[1] > max_len:
            raise ValueError(f'{owner}: {name} has {tokens[name].shape[1]} tokens but '
                             f'max_positions[{name!r}]={max_len}; raise max_positions')


@MODELS.register_module()
class SingleStreamFusion(BaseTokenFusion):
    """Single-stream transformer over the tokens of all modalities.

    Li et al., "VisualBERT: A Simple and Performant Baseline for Vision and
    Language", arXiv 2019 (the single-stream design also of UNITER and
    VL-BERT).

    Each modality m is projected by ``Linear(D_m, E)``, gets a learned
    position embedding (its own table of ``max_positions[m]`` rows) and a
    learned modality-type embedding; a learned [CLS] token is prepended and
    the sequence ``[CLS, tokens of m_1, tokens of m_2, ...]`` (modalities in
    ``in_dims`` order) goes through ``num_layers`` pre-norm transformer layers
    (:class:`torch.nn.TransformerEncoderLayer`, GELU), a final LayerNorm and
    ``Linear(E, out_dim)`` (left out when ``E == out_dim``).

    Args:
        in_dims: modality -> token size D_m; at least two modalities.
        out_dim: size of the fused tokens.
        embed_dim: common size E inside the transformer; default ``out_dim``.
        num_layers: number L of transformer layers.
        num_heads: attention heads; must divide E.
        ffn_dim: hidden size F of the feed-forward blocks; default ``4 * E``.
        dropout: dropout probability in the transformer layers.
        max_positions: maximum number of tokens per modality, an int for all
            or a dict modality -> int; longer inputs raise a ValueError.

    Inputs: ``tokens`` and ``masks`` as in :class:`BaseTokenFusion`.

    Returns:
        ``forward``: Tensor (B, 1 + sum_m N_m, out_dim), the [CLS] output
        first, padding positions zero;
        ``forward_pooled``: the [CLS] output, Tensor (B, out_dim).

    Missing modality: padding tokens are masked out as attention keys (weight
    exactly 0) and their outputs are set to zero, so they influence nothing. A
    modality whose tokens are all masked for a sample thus contributes
    nothing to that sample; the [CLS] token is always a real key, so no
    attention row is ever fully masked. With every modality missing the [CLS]
    output depends only on the learned [CLS] token.

    Parameter count (M modalities, P_m = ``max_positions[m]``):
    ``sum_m (D_m + 1) E + sum_m P_m E + M E + E + L (4 E^2 + 2 E F + 9 E + F)
    + 2 E + [E != out_dim] (E + 1) out_dim``.
    """

    def __init__(self,
                 in_dims: dict[str, int],
                 out_dim: int,
                 embed_dim: int | None = None,
                 num_layers: int = 2,
                 num_heads: int = 4,
                 ffn_dim: int | None = None,
                 dropout: float = 0.1,
                 max_positions: int | dict[str, int] = 512,
                 init_cfg: dict | None = None) -> None:
        super().__init__(in_dims, out_dim, init_cfg=init_cfg)
        owner = type(self).__name__
        self.embed_dim, ffn_dim = transformer_dims(owner, self.in_dims, self.out_dim, embed_dim,
                                                   num_heads, ffn_dim, dropout,
                                                   num_layers=num_layers)
        self.max_positions = _positions_per_modality(max_positions, self.modalities, owner)
        dim = self.embed_dim

        self.proj = modality_linears(self.in_dims, dim)
        self.pos_embed = nn.ParameterDict(
            {name: learned_embedding(n, dim) for name, n in self.max_positions.items()})
        self.type_embed = learned_embedding(len(self.modalities), dim)
        self.cls_token = learned_embedding(1, 1, dim)
        self.layers = nn.ModuleList(
            encoder_layer(dim, num_heads, ffn_dim, dropout) for _ in range(num_layers))
        self.norm = nn.LayerNorm(dim)
        self.out_proj = output_projection(dim, self.out_dim)

    def forward(self, tokens: dict[str, torch.Tensor],
                masks: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        self.check_inputs(tokens)
        _check_lengths(type(self).__name__, tokens, self.max_positions)
        projected, keep = project_tokens(self, self.proj, tokens, masks)

        batch = next(iter(projected.values())).shape[0]
        cls = self.cls_token.expand(batch, -1, -1)
        seq = [cls]
        seq_keep = [torch.ones(batch, 1, dtype=torch.bool, device=cls.device)]
        for i, name in enumerate(self.modalities):
            x = projected[name]
            seq.append(x + self.pos_embed[name][:x.shape[1]] + self.type_embed[i])
            seq_keep.append(keep[name])
        x, seq_keep = torch.cat(seq, dim=1), torch.cat(seq_keep, dim=1)

        bias = key_padding_bias(seq_keep, x.dtype)
        for layer in self.layers:
            x = layer(x, src_key_padding_mask=bias)
        x = self.out_proj(self.norm(x))
        return x.masked_fill(~seq_keep.unsqueeze(-1), 0.0)

    def forward_pooled(self, tokens: dict[str, torch.Tensor],
                       masks: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """The [CLS] output, (B, out_dim)."""
        return self(tokens, masks)[:, 0]


@MODELS.register_module()
class BottleneckFusion(BaseTokenFusion):
    """Multimodal Bottleneck Transformer (MBT).

    Nagrani et al., "Attention Bottlenecks for Multimodal Fusion", NeurIPS
    2021.

    Every modality m has its own stream ``[CLS_m, Linear(D_m, E)(tokens) +
    pos_m]`` and its own L pre-norm transformer layers
    (:class:`torch.nn.TransformerEncoderLayer`, GELU; weights not shared
    across modalities). The first ``fusion_layer`` layers process the streams
    separately; in each later layer, modality m's layer runs on its stream
    followed by the K = ``num_bottlenecks`` shared bottleneck tokens, and the
    K updated bottlenecks are then averaged over the modalities (Eq. 8 of the
    paper), so cross-modal information flows only through them. Each stream
    ends in its own LayerNorm, then a shared ``Linear(E, out_dim)`` (left out
    when ``E == out_dim``).

    ``fusion_layer == num_layers`` is MBT's late-fusion baseline: the streams
    never meet before the pooled average, and no bottleneck tokens are
    created.

    Args:
        in_dims: modality -> token size D_m; at least two modalities.
        out_dim: size of the fused tokens.
        embed_dim: common size E inside the transformer; default ``out_dim``.
        num_layers: number L of layers per modality.
        fusion_layer: index L_f of the first layer with bottlenecks, in
            ``[0, num_layers]``.
        num_bottlenecks: number K of bottleneck tokens.
        num_heads: attention heads; must divide E.
        ffn_dim: hidden size F of the feed-forward blocks; default ``4 * E``.
        dropout: dropout probability in the transformer layers.
        max_positions: maximum number of tokens per modality, an int for all
            or a dict modality -> int; longer inputs raise a ValueError.

    Inputs: ``tokens`` and ``masks`` as in :class:`BaseTokenFusion`.

    Returns:
        ``forward``: Tensor (B, sum_m (1 + N_m), out_dim), the streams
        ``[CLS_m, tokens of m]`` concatenated in ``in_dims`` order, padding
        positions zero (the bottleneck tokens are not returned);
        ``forward_pooled``: Tensor (B, out_dim), the mean of the per-modality
        CLS outputs (MBT averages the per-modality logits).

    Missing modality: padding tokens are masked out as attention keys (weight
    exactly 0) and their outputs are zero. A modality whose tokens are all
    masked for a sample is left out of that sample's bottleneck average and of
    its pooled mean (both average over the present modalities only), and its
    whole stream, CLS included, is zero in the output; it contributes nothing.
    A sample with every modality missing gets zero bottlenecks and a zero
    output. Each stream's CLS and bottleneck tokens are always real keys, so
    no attention row is ever fully masked.

    Parameter count (M modalities, P_m = ``max_positions[m]``):
    ``sum_m (D_m + 1) E + sum_m P_m E + M E + [L_f < L] K E
    + M L (4 E^2 + 2 E F + 9 E + F) + 2 M E + [E != out_dim] (E + 1) out_dim``.
    """

    def __init__(self,
                 in_dims: dict[str, int],
                 out_dim: int,
                 embed_dim: int | None = None,
                 num_layers: int = 4,
                 fusion_layer: int = 2,
                 num_bottlenecks: int = 4,
                 num_heads: int = 4,
                 ffn_dim: int | None = None,
                 dropout: float = 0.1,
                 max_positions: int | dict[str, int] = 512,
                 init_cfg: dict | None = None) -> None:
        super().__init__(in_dims, out_dim, init_cfg=init_cfg)
        owner = type(self).__name__
        self.embed_dim, ffn_dim = transformer_dims(owner, self.in_dims, self.out_dim, embed_dim,
                                                   num_heads, ffn_dim, dropout,
                                                   num_layers=num_layers,
                                                   num_bottlenecks=num_bottlenecks)
        if not 0 <= fusion_layer <= num_layers:
            raise ValueError(f'{owner}: fusion_layer must be in [0, num_layers={num_layers}], '
                             f'got {fusion_layer}')
        self.max_positions = _positions_per_modality(max_positions, self.modalities, owner)
        self.num_layers = int(num_layers)
        self.fusion_layer = int(fusion_layer)
        self.num_bottlenecks = int(num_bottlenecks)
        dim = self.embed_dim

        self.proj = modality_linears(self.in_dims, dim)
        self.pos_embed = nn.ParameterDict(
            {name: learned_embedding(n, dim) for name, n in self.max_positions.items()})
        self.cls_tokens = nn.ParameterDict(
            {name: learned_embedding(1, 1, dim) for name in self.modalities})
        # Late fusion never uses bottlenecks: a parameter would get no gradient.
        self.bottlenecks = (learned_embedding(1, self.num_bottlenecks, dim)
                            if self.fusion_layer < self.num_layers else None)
        self.layers = nn.ModuleList(
            nn.ModuleDict({name: encoder_layer(dim, num_heads, ffn_dim, dropout)
                           for name in self.modalities})
            for _ in range(self.num_layers))
        self.norms = nn.ModuleDict({name: nn.LayerNorm(dim) for name in self.modalities})
        self.out_proj = output_projection(dim, self.out_dim)

    def _encode(self, tokens: dict[str, torch.Tensor], masks: dict[str, torch.Tensor] | None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """The fused tokens (B, sum_m (1 + N_m), out_dim) and the pooled vector (B, out_dim)."""
        self.check_inputs(tokens)
        _check_lengths(type(self).__name__, tokens, self.max_positions)
        projected, keep = project_tokens(self, self.proj, tokens, masks)
        first = projected[self.modalities[0]]
        batch, dtype = first.shape[0], first.dtype

        streams, biases, present = {}, {}, {}
        for name in self.modalities:
            x = projected[name]
            cls = self.cls_tokens[name].expand(batch, -1, -1)
            streams[name] = torch.cat([cls, x + self.pos_embed[name][:x.shape[1]]], dim=1)
            # The CLS token is a real key even for a missing modality, so no
            # attention row is ever fully masked.
            stream_keep = torch.cat([keep[name].new_ones(batch, 1), keep[name]], dim=1)
            biases[name] = key_padding_bias(stream_keep, dtype)
            present[name] = keep[name].any(dim=1)
        # Averaging weights over the present modalities of each sample, (M, B).
        weights = torch.stack([present[name] for name in self.modalities]).to(dtype)
        weights = weights / weights.sum(dim=0, keepdim=True).clamp(min=1.0)

        bottlenecks = None if self.bottlenecks is None else self.bottlenecks.expand(batch, -1, -1)
        for index, layers in enumerate(self.layers):
            if index < self.fusion_layer:
                for name in self.modalities:
                    streams[name] = layers[name](streams[name],
                                                 src_key_padding_mask=biases[name])
                continue
            fused = torch.zeros_like(bottlenecks)
            for i, name in enumerate(self.modalities):
                length = streams[name].shape[1]
                bias = torch.cat(
                    [biases[name], biases[name].new_zeros(batch, self.num_bottlenecks)], dim=1)
                out = layers[name](torch.cat([streams[name], bottlenecks], dim=1),
                                   src_key_padding_mask=bias)
                streams[name] = out[:, :length]
                fused = fused + weights[i, :, None, None] * out[:, length:]
            bottlenecks = fused

        outputs, pooled = [], 0.0
        for i, name in enumerate(self.modalities):
            out = self.out_proj(self.norms[name](streams[name]))
            out_keep = torch.cat([present[name].unsqueeze(1), keep[name]], dim=1)
            outputs.append(out.masked_fill(~out_keep.unsqueeze(-1), 0.0))
            pooled = pooled + weights[i, :, None] * out[:, 0]
        return torch.cat(outputs, dim=1), pooled

    def forward(self, tokens: dict[str, torch.Tensor],
                masks: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        return self._encode(tokens, masks)[0]

    def forward_pooled(self, tokens: dict[str, torch.Tensor],
                       masks: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Mean of the CLS outputs of the present modalities, (B, out_dim)."""
        return self._encode(tokens, masks)[1]
