"""Cross-attention blocks over padded token sequences.

:func:`masked_cross_attention` is the masked attention call itself;
:class:`PreNormCrossAttention` wraps it in a pre-norm residual sublayer, and
:class:`CrossAttentionBlock` adds a feed-forward network (optionally with
Flamingo's tanh gates).
"""
import torch
from torch import nn


def masked_cross_attention(attn: nn.MultiheadAttention, query: torch.Tensor,
                           context: torch.Tensor, context_mask: torch.Tensor) -> torch.Tensor:
    """``attn(query, context, context)`` over the real context tokens only.

    Args:
        attn: a ``batch_first`` multi-head attention of size E.
        query: Tensor (B, N, E).
        context: Tensor (B, S, E), finite everywhere (padding already filled).
        context_mask: BoolTensor (B, S), True for real context tokens.

    Returns:
        Tensor (B, N, E). Padding context tokens get attention weight exactly
        0. A sample without any real context token gets zeros: its attention
        contributes nothing.

    ``nn.MultiheadAttention`` turns a boolean mask into ``-inf`` logits, so a
    fully masked row can be ``softmax(-inf, ..., -inf) = NaN`` (whether it is
    depends on the attention kernel the backend picks). Such samples
    attend to all their (finite) tokens instead, a "safe" mask, and their
    output is then overwritten by zeros; ``masked_fill`` passes no gradient to
    the overwritten values, so they cannot reach the parameters either.
    """
    if context.shape[1] == 0:
        return torch.zeros_like(query)
    has_context = context_mask.any(dim=1)  # (B,)
    safe_mask = context_mask | ~has_context.unsqueeze(1)
    out, _ = attn(query, context, context, key_padding_mask=~safe_mask, need_weights=False)
    return out.masked_fill(~has_context[:, None, None], 0.0)


class PreNormCrossAttention(nn.Module):
    """Pre-norm residual cross-attention ``x + Attn(LN(x), LN(context))``.

    Padding context tokens get attention weight exactly 0, and a sample
    without any real context token passes ``x`` unchanged (see
    :func:`masked_cross_attention`).

    Args:
        embed_dim: token size E (of the query and of the context).
        num_heads: attention heads; must divide ``embed_dim``.
        dropout: dropout on the attention weights.

    Parameter count: ``4 E^2 + 4 E`` (attention) ``+ 4 E`` (two LayerNorms).
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        self.norm_query = nn.LayerNorm(embed_dim)
        self.norm_context = nn.LayerNorm(embed_dim)
        self.attn = nn.MultiheadAttention(
            embed_dim, num_heads, dropout=dropout, batch_first=True)

    def attend(self, x: torch.Tensor, context: torch.Tensor,
               context_mask: torch.Tensor) -> torch.Tensor:
        """The residual branch ``Attn(LN(x), LN(context))`` alone, (B, N, E)."""
        return masked_cross_attention(
            self.attn, self.norm_query(x), self.norm_context(context), context_mask)

    def forward(self, x: torch.Tensor, context: torch.Tensor,
                context_mask: torch.Tensor) -> torch.Tensor:
        """x: (B, N, E); context: (B, S, E); context_mask: (B, S) -> (B, N, E)."""
        return x + self.attend(x, context, context_mask)


class CrossAttentionBlock(PreNormCrossAttention):
    """One pre-norm cross-attention layer followed by a feed-forward network.

    ``x = x + g_attn * Dropout(Attn(LN(x), LN(context)))`` then
    ``x = x + g_ffn * Dropout(FFN(LN(x)))`` with
    ``FFN = Linear(E, F), GELU, Dropout, Linear(F, E)``. Without gates
    ``g_attn = g_ffn = 1``; with ``gated=True`` they are ``tanh(alpha_attn)``
    and ``tanh(alpha_ffn)``, two learned scalars initialised at 0 (Flamingo's
    GATED XATTN-DENSE), so the block starts as the identity.

    Args:
        embed_dim: token size E (of the query and of the context).
        num_heads: attention heads; must divide ``embed_dim``.
        ffn_dim: hidden size F of the feed-forward network.
        dropout: dropout on the attention weights, inside the FFN and on both
            residual branches.
        gated: scale the residual branches by learned tanh gates.

    Parameter count: ``4 E^2 + 4 E`` (attention) ``+ 2 E F + F + E`` (FFN)
    ``+ 6 E`` (three LayerNorms) ``= 4 E^2 + 2 E F + 11 E + F``, plus 2 with
    ``gated=True``.
    """

    def __init__(self, embed_dim: int, num_heads: int, ffn_dim: int, dropout: float,
                 gated: bool = False) -> None:
        super().__init__(embed_dim, num_heads, dropout)
        self.norm_ffn = nn.LayerNorm(embed_dim)
        self.ffn = nn.Sequential(
            nn.Linear(embed_dim, ffn_dim), nn.GELU(), nn.Dropout(dropout),
            nn.Linear(ffn_dim, embed_dim))
        self.dropout = nn.Dropout(dropout)
        self.gated = gated
        if gated:
            self.alpha_attn = nn.Parameter(torch.zeros(()))
            self.alpha_ffn = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor, context: torch.Tensor,
                context_mask: torch.Tensor) -> torch.Tensor:
        """x: (B, N, E); context: (B, S, E); context_mask: (B, S) -> (B, N, E)."""
        attended = self.dropout(self.attend(x, context, context_mask))
        if self.gated:
            attended = torch.tanh(self.alpha_attn) * attended
        x = x + attended
        update = self.dropout(self.ffn(self.norm_ffn(x)))
        if self.gated:
            update = torch.tanh(self.alpha_ffn) * update
        return x + update
