"""Cross-attention fusion of token sequences: one stream attends to another.

The three fusion modules here are stacks of
:class:`~mmfusion.models.layers.CrossAttentionBlock`:

* :class:`CrossAttentionFusion`: a query modality attends to one or more
  context modalities;
* :class:`CoAttentionFusion`: two streams attend to each other (ViLBERT);
* :class:`GatedCrossAttentionFusion`: the query stream attends to the context
  through tanh-gated residual branches that start closed (Flamingo).
"""
from collections.abc import Sequence

import torch
from torch import nn

from mmfusion.registry import MODELS

from ..layers import (
    CrossAttentionBlock,
    check_dropout,
    check_positive,
    concat_context,
    masked_mean,
    masked_tokens,
    modality_linears,
    output_projection,
    project_tokens,
    token_mask,
)
from .base import BaseTokenFusion


def _init_layer_sizes(fusion: BaseTokenFusion, embed_dim: int | None, num_heads: int,
                      num_layers: int, ffn_dim: int | None, dropout: float) -> None:
    """Set ``fusion.embed_dim`` (default ``out_dim``), ``num_layers`` and
    ``ffn_dim`` (default ``4 * embed_dim``) after checking them, with errors
    naming the fusion and the argument."""
    owner = type(fusion).__name__
    fusion.embed_dim = int(embed_dim if embed_dim is not None else fusion.out_dim)
    fusion.num_layers = int(num_layers)
    fusion.ffn_dim = int(ffn_dim if ffn_dim is not None else 4 * fusion.embed_dim)
    if fusion.embed_dim < 1 or num_heads < 1 or fusion.embed_dim % num_heads:
        raise ValueError(f'{owner}: embed_dim ({fusion.embed_dim}) must be a positive multiple '
                         f'of num_heads ({num_heads})')
    check_positive(owner, num_layers=fusion.num_layers, ffn_dim=fusion.ffn_dim)
    check_dropout(owner, dropout)


@MODELS.register_module()
class CrossAttentionFusion(BaseTokenFusion):
    """A query modality attends to one or more context modalities.

    The cross-attention layer of the Transformer decoder (Vaswani et al.,
    "Attention Is All You Need", NeurIPS 2017), in its pre-norm form (Xiong et
    al., "On Layer Normalization in the Transformer Architecture", ICML 2020),
    used as a fusion module: e.g. text tokens attend to image patches.

    Every modality is projected to ``embed_dim`` E by its own Linear layer.
    With several context modalities their tokens are concatenated (in
    ``context`` order) and each gets a learned modality-type embedding added,
    so attention can tell them apart; with a single context modality there is
    none, as it would only duplicate that projection's bias. The projected
    query tokens then go through ``num_layers``
    :class:`~mmfusion.models.layers.CrossAttentionBlock` (cross-attention +
    FFN, both with residuals), a final LayerNorm, and, if
    ``embed_dim != out_dim``, a Linear to ``out_dim``. The query tokens do not
    attend to each other.

    Args:
        in_dims: modality -> token size D_m; exactly the query and the context
            modalities.
        out_dim: size of the output tokens.
        query: name of the modality whose tokens are updated (e.g. ``'text'``).
        context: name or names of the attended modalities; ``None`` means all
            modalities of ``in_dims`` except ``query``.
        embed_dim: common token size E inside the layers; ``None`` means
            ``out_dim``.
        num_heads: attention heads; must divide ``embed_dim``.
        num_layers: number L of cross-attention blocks.
        ffn_dim: hidden size F of the FFNs; ``None`` means ``4 * embed_dim``.
        dropout: dropout probability (attention weights, FFN, residuals).

    Inputs: ``tokens`` and ``masks`` as in :class:`BaseTokenFusion`.

    Returns:
        ``forward``: Tensor (B, N_query, out_dim), the updated query tokens,
        exactly 0 at padding query positions;
        ``forward_pooled``: Tensor (B, out_dim), their mean over the real query
        tokens.

    Missing modality: padding tokens (even NaN) never reach the output: they
    are zero-filled before the projections, get attention weight exactly 0,
    and padding query positions of the output are set to 0. A context
    modality that is fully masked for a sample simply drops out of that
    sample's attention (the same as passing it with no tokens); if all
    context tokens of a sample are masked, the attention contributes zero and
    the query tokens pass through the residual and FFN path only, with no NaN
    (see :func:`~mmfusion.models.layers.masked_cross_attention`). A fully
    masked query gives zeros.

    Parameter count, with C context modalities and P = ``4 E^2 + 2 E F + 11 E
    + F`` per block: ``sum_m (D_m + 1) E`` (projections, query and contexts)
    ``+ C E`` (type embeddings, only if C >= 2) ``+ L P + 2 E`` (final
    LayerNorm) ``+ (E + 1) out_dim`` (only if E != out_dim).
    """
    # What GatedCrossAttentionFusion changes.
    _gated = False
    _final_norm = True

    def __init__(self,
                 in_dims: dict[str, int],
                 out_dim: int,
                 query: str = 'text',
                 context: str | Sequence[str] | None = None,
                 embed_dim: int | None = None,
                 num_heads: int = 8,
                 num_layers: int = 1,
                 ffn_dim: int | None = None,
                 dropout: float = 0.1,
                 init_cfg: dict | None = None) -> None:
        super().__init__(in_dims, out_dim, init_cfg=init_cfg)
        name = type(self).__name__
        if query not in self.in_dims:
            raise ValueError(f'{name}: query={query!r} is not in in_dims '
                             f'{sorted(self.in_dims)}')
        if context is None:
            context = [m for m in self.modalities if m != query]
        elif isinstance(context, str):
            context = [context]
        context = list(context)
        if not context:
            raise ValueError(f'{name}: needs at least one context modality besides '
                             f'query={query!r}; in_dims has {sorted(self.in_dims)}')
        if query in context or len(set(context)) != len(context):
            raise ValueError(f'{name}: context must be distinct modalities other than '
                             f'query={query!r}, got context={context!r}')
        unknown = [m for m in context if m not in self.in_dims]
        if unknown:
            raise ValueError(f'{name}: context {unknown!r} not in in_dims '
                             f'{sorted(self.in_dims)}')
        unused = sorted(set(self.in_dims) - {query, *context})
        if unused:
            # Their projections would never be trained.
            raise ValueError(f'{name}: in_dims has modalities that are neither query '
                             f'nor context: {unused!r}')
        self.query = query
        self.context = context
        _init_layer_sizes(self, embed_dim, num_heads, num_layers, ffn_dim, dropout)
        e = self.embed_dim

        self.query_proj = nn.Linear(self.in_dims[query], e)
        self.context_proj = modality_linears({m: self.in_dims[m] for m in context}, e)
        self.type_embed = (nn.Parameter(0.02 * torch.randn(len(context), e))
                           if len(context) > 1 else None)
        self.layers = nn.ModuleList(
            CrossAttentionBlock(e, num_heads, self.ffn_dim, dropout, gated=self._gated)
            for _ in range(self.num_layers))
        self.norm_out = nn.LayerNorm(e) if self._final_norm else nn.Identity()
        self.out_proj = output_projection(e, self.out_dim)

    def forward(self, tokens: dict[str, torch.Tensor],
                masks: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        self.check_inputs(tokens)
        query, q_mask = masked_tokens(tokens[self.query], masks, self.query,
                                      type(self).__name__)
        x = self.query_proj(query)
        projected, keep = project_tokens(self, self.context_proj, tokens, masks, self.context)
        context, context_mask = concat_context(self.context, projected, keep, self.type_embed)
        for layer in self.layers:
            x = layer(x, context, context_mask)
        x = self.out_proj(self.norm_out(x))
        return x.masked_fill(~q_mask.unsqueeze(-1), 0.0)

    def forward_pooled(self, tokens: dict[str, torch.Tensor],
                       masks: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Mean of the output over the real query tokens, (B, out_dim)."""
        q_mask = token_mask(tokens[self.query], masks, self.query, type(self).__name__)
        return masked_mean(self(tokens, masks), q_mask)


@MODELS.register_module()
class GatedCrossAttentionFusion(CrossAttentionFusion):
    """Query tokens attend to context tokens through tanh-gated residuals.

    The GATED XATTN-DENSE layer of Flamingo (Alayrac et al., "Flamingo: a
    Visual Language Model for Few-Shot Learning", NeurIPS 2022), where the
    language stream attends to visual tokens:
    ``y = y + tanh(alpha_attn) * Attn(LN(y), LN(x))``,
    ``y = y + tanh(alpha_ffn) * FFN(LN(y))``, with one pair of learned scalars
    ``alpha`` per layer, initialised at 0.

    Everything else is as in :class:`CrossAttentionFusion` (projections, type
    embeddings for several context modalities, output Linear when
    ``embed_dim != out_dim``, masking), except that there is no final
    LayerNorm: so at initialisation the output equals the projected query
    tokens exactly, ``out_proj(query_proj(query))`` (``out_proj`` is the
    identity when ``embed_dim == out_dim``), as Flamingo needs to leave a
    pretrained language model unchanged at the start of training.

    Gradients: because the gates start at ``tanh(0) = 0``, at initialisation
    the parameters behind them (attention, FFN, their LayerNorms, the context
    projections and type embeddings) receive zero gradient; only the alphas
    (and the query/output projections) do. Once an optimiser step moves the
    alphas away from 0, every parameter gets a gradient.

    Args:
        in_dims, out_dim, query, context, embed_dim, num_heads, num_layers,
        ffn_dim, dropout: as in :class:`CrossAttentionFusion`.

    Inputs: ``tokens`` and ``masks`` as in :class:`BaseTokenFusion`.

    Returns:
        ``forward``: Tensor (B, N_query, out_dim), 0 at padding query
        positions; ``forward_pooled``: Tensor (B, out_dim), the mean over the
        real query tokens.

    Missing modality: as in :class:`CrossAttentionFusion`; a sample whose
    context tokens are all masked gets a zero attention branch, so its query
    tokens only go through the gated FFN residual, and nothing is NaN.

    Parameter count, with P = ``4 E^2 + 2 E F + 11 E + F``:
    ``sum_m (D_m + 1) E + C E`` (only if C >= 2) ``+ L (P + 2)
    + (E + 1) out_dim`` (only if E != out_dim).
    """
    _gated = True
    _final_norm = False


@MODELS.register_module()
class CoAttentionFusion(BaseTokenFusion):
    """Two token streams attend to each other: ViLBERT's co-attention layers.

    Lu et al., "ViLBERT: Pretraining Task-Agnostic Visiolinguistic
    Representations for Vision-and-Language Tasks", NeurIPS 2019 (the
    co-attentional transformer layer, here in pre-norm form).

    Both modalities A and B (in ``in_dims`` order) are projected to
    ``embed_dim`` E. In each of the L layers, A attends to B and B attends to
    A, both from the previous layer's states, each through its own
    :class:`~mmfusion.models.layers.CrossAttentionBlock` (cross-attention + FFN):
    ``a' = Block_A(a, b)``, ``b' = Block_B(b, a)``. Each stream then gets its
    own final LayerNorm, and, if ``embed_dim != out_dim``, one shared Linear
    to ``out_dim``.

    The pooled view concatenates the masked means of the two output streams
    and applies a Linear (2 out_dim -> out_dim). ViLBERT multiplies its two
    pooled vectors element-wise instead; that would zero the whole summary of
    a sample that lacks one modality, while the concatenation keeps the other
    modality's half.

    Args:
        in_dims: exactly two modalities -> token size D_m.
        out_dim: size of the output tokens.
        embed_dim: common token size E inside the layers; ``None`` means
            ``out_dim``.
        num_heads: attention heads; must divide ``embed_dim``.
        num_layers: number L of co-attention layers.
        ffn_dim: hidden size F of the FFNs; ``None`` means ``4 * embed_dim``.
        dropout: dropout probability (attention weights, FFN, residuals).

    Inputs:
        tokens: ``{a: (B, N_a, D_a), b: (B, N_b, D_b)}``.
        masks: optional modality -> BoolTensor (B, N_m), True for real tokens.

    Returns:
        ``forward``: Tensor (B, N_a + N_b, out_dim), the A tokens followed by
        the B tokens, 0 at padding positions;
        ``forward_pooled``: Tensor (B, out_dim).

    Missing modality: padding tokens (even NaN) never reach the output (zero
    filled before the projections, attention weight exactly 0, their output
    positions set to 0). If a modality is fully masked for a sample, the
    other stream's attention contributes zero (its tokens pass through the
    residual and FFN only, no NaN), the missing stream's outputs are all 0,
    and its half of the pooled concatenation is 0.

    Parameter count, with P = ``4 E^2 + 2 E F + 11 E + F``:
    ``(D_a + 1) E + (D_b + 1) E + 2 L P + 4 E`` (two final LayerNorms)
    ``+ (E + 1) out_dim`` (only if E != out_dim) ``+ (2 out_dim + 1) out_dim``
    (pooling Linear, used by ``forward_pooled`` only).
    """

    def __init__(self,
                 in_dims: dict[str, int],
                 out_dim: int,
                 embed_dim: int | None = None,
                 num_heads: int = 8,
                 num_layers: int = 1,
                 ffn_dim: int | None = None,
                 dropout: float = 0.1,
                 init_cfg: dict | None = None) -> None:
        super().__init__(in_dims, out_dim, init_cfg=init_cfg)
        if len(self.in_dims) != 2:
            raise ValueError(f'CoAttentionFusion fuses exactly two modalities; in_dims has '
                             f'{sorted(self.in_dims)}')
        _init_layer_sizes(self, embed_dim, num_heads, num_layers, ffn_dim, dropout)
        e = self.embed_dim

        self.proj = modality_linears(self.in_dims, e)
        # layers[l][m]: the block in which stream m attends to the other stream.
        self.layers = nn.ModuleList(
            nn.ModuleDict({m: CrossAttentionBlock(e, num_heads, self.ffn_dim, dropout)
                           for m in self.modalities})
            for _ in range(self.num_layers))
        self.norm_out = nn.ModuleDict({m: nn.LayerNorm(e) for m in self.modalities})
        self.out_proj = output_projection(e, self.out_dim)
        self.pool = nn.Linear(2 * self.out_dim, self.out_dim)

    def _streams(self, tokens: dict[str, torch.Tensor],
                 masks: dict[str, torch.Tensor] | None
                 ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Both output streams, modality -> (B, N_m, out_dim), and their masks."""
        self.check_inputs(tokens)
        a, b = self.modalities
        x, keep = project_tokens(self, self.proj, tokens, masks)
        for layer in self.layers:
            # Both directions read the previous layer's states.
            x = {a: layer[a](x[a], x[b], keep[b]), b: layer[b](x[b], x[a], keep[a])}
        out = {m: self.out_proj(self.norm_out[m](x[m])).masked_fill(
            ~keep[m].unsqueeze(-1), 0.0) for m in self.modalities}
        return out, keep

    def forward(self, tokens: dict[str, torch.Tensor],
                masks: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        out, _ = self._streams(tokens, masks)
        return torch.cat([out[m] for m in self.modalities], dim=1)

    def forward_pooled(self, tokens: dict[str, torch.Tensor],
                       masks: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """``Linear([masked mean of A ; masked mean of B])``, (B, out_dim)."""
        out, keep = self._streams(tokens, masks)
        return self.pool(torch.cat([masked_mean(out[m], keep[m]) for m in self.modalities],
                                   dim=-1))
