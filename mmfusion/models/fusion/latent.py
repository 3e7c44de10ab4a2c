"""Latent-bottleneck fusion of token sequences: a fixed set of learned latents
or queries reads all modalities through cross-attention (Perceiver, Q-Former).
"""

import torch
from torch import nn

from mmfusion.registry import MODELS

from ..layers import (
    PreNormCrossAttention,
    concat_context,
    encoder_layer,
    key_padding_bias,
    learned_embedding,
    modality_linears,
    output_projection,
    project_tokens,
    transformer_dims,
)
from .base import BaseTokenFusion


class _FeedForward(nn.Module):
    """Pre-norm residual GELU MLP ``x + Dropout(W_2 Dropout(GELU(W_1 LN(x))))``.

    The same function as the (ungated) feed-forward half of
    :class:`~mmfusion.models.layers.CrossAttentionBlock`, but a module of its own,
    so that the Perceiver and Q-Former parameter names (``norm``, ``mlp``) stay.

    Parameter count: ``2 E F + F + 3 E``.
    """

    def __init__(self, embed_dim: int, ffn_dim: int, dropout: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(embed_dim)
        self.mlp = nn.Sequential(
            nn.Linear(embed_dim, ffn_dim), nn.GELU(), nn.Dropout(dropout),
            nn.Linear(ffn_dim, embed_dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mlp(self.norm(x))


@MODELS.register_module()
class PerceiverFusion(BaseTokenFusion):
    """Perceiver: learned latents that iteratively read all modalities.

    Jaegle et al., "Perceiver: General Perception with Iterative Attention",
    ICML 2021.

    Each modality m is projected by ``Linear(D_m, E)`` and gets a learned
    modality embedding; the tokens of all modalities are concatenated into
    one context. L = ``num_latents`` learned latents (E each) then run
    ``num_blocks`` times through: a pre-norm cross-attention to the context
    (``cross_attn_heads`` heads, one in the paper) with its own feed-forward,
    then S = ``num_self_attn_layers`` pre-norm latent self-attention layers
    (:class:`torch.nn.TransformerEncoderLayer`, GELU). Finally a LayerNorm and
    ``Linear(E, out_dim)`` (left out when ``E == out_dim``).

    The weights are shared across the ``num_blocks`` repeats (the paper's
    recurrent view; it additionally keeps the first cross-attention unshared,
    which is not done here), so the parameter count does not depend on
    ``num_blocks``. No position embeddings are added: the encoders' tokens
    carry their own, and the fusion is invariant to the order of the tokens
    within each modality.

    Args:
        in_dims: modality -> token size D_m; at least two modalities.
        out_dim: size of the output latents.
        embed_dim: latent size E; default ``out_dim``.
        num_latents: number L of latents.
        num_blocks: repeats of (cross-attention, latent self-attention).
        num_self_attn_layers: latent self-attention layers S per block (>= 0).
        num_heads: heads of the latent self-attention; must divide E.
        cross_attn_heads: heads of the cross-attention; must divide E.
        ffn_dim: hidden size F of the feed-forward blocks; default ``4 * E``.
        dropout: dropout probability in the attention and feed-forward blocks.

    Inputs: ``tokens`` and ``masks`` as in :class:`BaseTokenFusion`.

    Returns:
        ``forward``: the latents, Tensor (B, L, out_dim);
        ``forward_pooled``: their mean, Tensor (B, out_dim).

    Missing modality: padding tokens are masked out as cross-attention keys
    (weight exactly 0), so a modality whose tokens are all masked for a sample
    contributes nothing to it. When a sample has no real token at all, its
    cross-attention output is set to zero (instead of a softmax over padding
    only), so its output depends only on the learned latents.

    Parameter count (M modalities):
    ``sum_m (D_m + 1) E + M E + L E + (4 E^2 + 2 E F + 11 E + F)
    + S (4 E^2 + 2 E F + 9 E + F) + 2 E + [E != out_dim] (E + 1) out_dim``.
    """

    def __init__(self,
                 in_dims: dict[str, int],
                 out_dim: int,
                 embed_dim: int | None = None,
                 num_latents: int = 32,
                 num_blocks: int = 2,
                 num_self_attn_layers: int = 2,
                 num_heads: int = 4,
                 cross_attn_heads: int = 1,
                 ffn_dim: int | None = None,
                 dropout: float = 0.1,
                 init_cfg: dict | None = None) -> None:
        super().__init__(in_dims, out_dim, init_cfg=init_cfg)
        owner = type(self).__name__
        self.embed_dim, ffn_dim = transformer_dims(owner, self.in_dims, self.out_dim, embed_dim,
                                                   num_heads, ffn_dim, dropout,
                                                   num_latents=num_latents, num_blocks=num_blocks,
                                                   cross_attn_heads=cross_attn_heads)
        if self.embed_dim % cross_attn_heads:
            raise ValueError(f'{owner}: embed_dim={self.embed_dim} must be divisible by '
                             f'cross_attn_heads={cross_attn_heads}')
        if num_self_attn_layers < 0:
            raise ValueError(f'{owner}: num_self_attn_layers must be >= 0, '
                             f'got {num_self_attn_layers}')
        self.num_blocks = int(num_blocks)
        dim = self.embed_dim

        self.proj = modality_linears(self.in_dims, dim)
        self.type_embed = learned_embedding(len(self.modalities), dim)
        self.latents = learned_embedding(1, num_latents, dim)
        self.cross_attn = PreNormCrossAttention(dim, cross_attn_heads, dropout)
        self.cross_ffn = _FeedForward(dim, ffn_dim, dropout)
        self.self_attn_layers = nn.ModuleList(
            encoder_layer(dim, num_heads, ffn_dim, dropout) for _ in range(num_self_attn_layers))
        self.norm = nn.LayerNorm(dim)
        self.out_proj = output_projection(dim, self.out_dim)

    def forward(self, tokens: dict[str, torch.Tensor],
                masks: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        self.check_inputs(tokens)
        projected, keep = project_tokens(self, self.proj, tokens, masks)
        context, context_mask = concat_context(self.modalities, projected, keep, self.type_embed)
        x = self.latents.expand(context.shape[0], -1, -1)
        for _ in range(self.num_blocks):
            x = self.cross_ffn(self.cross_attn(x, context, context_mask))
            for layer in self.self_attn_layers:
                x = layer(x)
        return self.out_proj(self.norm(x))

    def forward_pooled(self, tokens: dict[str, torch.Tensor],
                       masks: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Mean of the output latents, (B, out_dim)."""
        return self(tokens, masks).mean(dim=1)


class _QFormerLayer(nn.Module):
    """One Q-Former layer: self-attention over [queries; text], cross-attention
    of the queries to the context (optional), then separate feed-forwards for
    the queries and (optional) the text, as BLIP-2's ``intermediate_query`` and
    ``intermediate``."""

    def __init__(self, embed_dim: int, num_heads: int, ffn_dim: int, dropout: float,
                 cross_attention: bool, update_text: bool) -> None:
        super().__init__()
        self.norm_self = nn.LayerNorm(embed_dim)
        self.self_attn = nn.MultiheadAttention(embed_dim, num_heads, dropout=dropout,
                                               batch_first=True)
        self.cross_attn = (PreNormCrossAttention(embed_dim, num_heads, dropout)
                           if cross_attention else None)
        self.ffn = _FeedForward(embed_dim, ffn_dim, dropout)
        self.text_ffn = _FeedForward(embed_dim, ffn_dim, dropout) if update_text else None

    def forward(self, queries: torch.Tensor, text: torch.Tensor | None,
                text_bias: torch.Tensor | None, context: torch.Tensor,
                context_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        num_queries = queries.shape[1]
        if text is None:
            x, bias = queries, None
        else:
            x = torch.cat([queries, text], dim=1)
            # The queries are always real keys, so no row is fully masked.
            bias = torch.cat([text_bias.new_zeros(text_bias.shape[0], num_queries), text_bias],
                             dim=1)
        h = self.norm_self(x)
        x = x + self.self_attn(h, h, h, key_padding_mask=bias, need_weights=False)[0]
        queries, text = x[:, :num_queries], (None if text is None else x[:, num_queries:])

        if self.cross_attn is not None:
            queries = self.cross_attn(queries, context, context_mask)
        queries = self.ffn(queries)
        if self.text_ffn is not None:
            text = self.text_ffn(text)
        return queries, text


@MODELS.register_module()
class QFormerFusion(BaseTokenFusion):
    """Q-Former: learned queries that read the context through cross-attention.

    Li et al., "BLIP-2: Bootstrapping Language-Image Pre-training with Frozen
    Image Encoders and Large Language Models", ICML 2023.

    Each modality m is projected by ``Linear(D_m, E)``. The context is the
    concatenation of every modality except ``text_modality``, each with a
    learned modality embedding. Q = ``num_queries`` learned queries go through
    ``num_layers`` pre-norm layers, each: self-attention among the queries;
    cross-attention of the queries to the context, in layers ``0, c, 2c, ...``
    (c = ``cross_attention_freq``; BLIP-2 uses c = 2); a GELU feed-forward.
    Finally a LayerNorm and ``Linear(E, out_dim)`` (left out when
    ``E == out_dim``).

    With ``text_modality`` set, the projected text tokens join the
    self-attention of every layer (BLIP-2's text-query interaction,
    bidirectional as in its image-text matching): queries and text attend to
    each other with shared attention weights; the text is not
    cross-attended and has its own feed-forward in every layer but the last
    (whose text output is never used); only the query positions are returned.
    Unlike BLIP-2 (post-norm BERT) the layers are pre-norm.

    Args:
        in_dims: modality -> token size D_m; at least two modalities, and at
            least one besides ``text_modality``.
        out_dim: size of the output query tokens.
        embed_dim: query size E; default ``out_dim``.
        num_queries: number Q of learned queries.
        num_layers: number L of layers.
        cross_attention_freq: cross-attention every c-th layer, from layer 0.
        text_modality: optional name of the modality that joins the
            self-attention instead of the context.
        num_heads: attention heads; must divide E.
        ffn_dim: hidden size F of the feed-forward blocks; default ``4 * E``.
        dropout: dropout probability in the attention and feed-forward blocks.

    Inputs: ``tokens`` and ``masks`` as in :class:`BaseTokenFusion`.

    Returns:
        ``forward``: the queries, Tensor (B, Q, out_dim);
        ``forward_pooled``: their mean, Tensor (B, out_dim).

    Missing modality: padding tokens are masked out as attention keys (weight
    exactly 0), so a modality whose tokens are all masked for a sample
    contributes nothing to it (for the text, the queries remain as keys). When
    a sample has no real context token at all, its cross-attention outputs are
    set to zero (instead of a softmax over padding only), so the queries pass
    unchanged through those blocks.

    Parameter count (C context modalities, X = number of cross-attention
    layers ``ceil(L / c)``, T = 1 with ``text_modality`` else 0):
    ``sum_m (D_m + 1) E + C E + Q E + L (4 E^2 + 2 E F + 9 E + F)
    + X (4 E^2 + 8 E) + T (L - 1) (2 E F + F + 3 E) + 2 E
    + [E != out_dim] (E + 1) out_dim``.
    """

    def __init__(self,
                 in_dims: dict[str, int],
                 out_dim: int,
                 embed_dim: int | None = None,
                 num_queries: int = 32,
                 num_layers: int = 2,
                 cross_attention_freq: int = 2,
                 text_modality: str | None = None,
                 num_heads: int = 4,
                 ffn_dim: int | None = None,
                 dropout: float = 0.1,
                 init_cfg: dict | None = None) -> None:
        super().__init__(in_dims, out_dim, init_cfg=init_cfg)
        owner = type(self).__name__
        self.embed_dim, ffn_dim = transformer_dims(owner, self.in_dims, self.out_dim, embed_dim,
                                                   num_heads, ffn_dim, dropout,
                                                   num_queries=num_queries, num_layers=num_layers,
                                                   cross_attention_freq=cross_attention_freq)
        if text_modality is not None and text_modality not in self.in_dims:
            raise ValueError(f'{owner}: text_modality={text_modality!r} is not in in_dims '
                             f'{sorted(self.in_dims)}')
        self.text_modality = text_modality
        self.context_modalities = [name for name in self.modalities if name != text_modality]
        self.cross_attention_freq = int(cross_attention_freq)
        dim = self.embed_dim

        self.proj = modality_linears(self.in_dims, dim)
        self.type_embed = learned_embedding(len(self.context_modalities), dim)
        self.queries = learned_embedding(1, num_queries, dim)
        self.layers = nn.ModuleList(
            _QFormerLayer(dim, num_heads, ffn_dim, dropout,
                          cross_attention=index % self.cross_attention_freq == 0,
                          update_text=text_modality is not None and index < num_layers - 1)
            for index in range(num_layers))
        self.norm = nn.LayerNorm(dim)
        self.out_proj = output_projection(dim, self.out_dim)

    def forward(self, tokens: dict[str, torch.Tensor],
                masks: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        self.check_inputs(tokens)
        projected, keep = project_tokens(self, self.proj, tokens, masks)
        context, context_mask = concat_context(self.context_modalities, projected, keep,
                                               self.type_embed)
        text = text_bias = None
        if self.text_modality is not None:
            text = projected[self.text_modality]
            text_bias = key_padding_bias(keep[self.text_modality], text.dtype)

        queries = self.queries.expand(context.shape[0], -1, -1)
        for layer in self.layers:
            queries, text = layer(queries, text, text_bias, context, context_mask)
        return self.out_proj(self.norm(queries))

    def forward_pooled(self, tokens: dict[str, torch.Tensor],
                       masks: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Mean of the output queries, (B, out_dim)."""
        return self(tokens, masks).mean(dim=1)
