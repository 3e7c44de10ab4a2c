"""Attention-based fusion of token sequences."""

import torch
from torch import nn

from mmfusion.registry import MODELS

from ..layers import check_dropout, check_positive, masked_mean, masked_softmax, masked_tokens
from .base import BaseTokenFusion


@MODELS.register_module()
class TopDownAttentionFusion(BaseTokenFusion):
    """Question-guided top-down attention over image regions or grid cells.

    Anderson et al., "Bottom-Up and Top-Down Attention for Image Captioning
    and Visual Question Answering", CVPR 2018; the VQA model of Teney et al.,
    "Tips and Tricks for Visual Question Answering: Learnings from the 2017
    Challenge", CVPR 2018.

    With ``q`` the masked mean of the query tokens and ``v_i`` the context
    tokens (H = ``hidden_dim``, G = ``num_glimpses``):

    * attention logits ``a_i = W_a Dropout(ReLU(W_v v_i) * ReLU(W_q q))``
      (G logits per token), softmax over the real context tokens;
    * attended vector: per glimpse ``sum_i alpha_{g,i} v_i``, the G glimpses
      concatenated to ``(B, G * D_context)``;
    * fused ``ReLU(W_q' q) * ReLU(W_v' v_att)`` of size ``out_dim``.

    ``W_a`` has no bias: a bias shared by all tokens cancels in the softmax, so
    it would be a parameter that never receives a gradient.

    Args:
        in_dims: exactly two modalities, ``query`` and ``context``, -> token size.
        out_dim: size of the fused vector.
        query: name of the guiding modality (pooled by masked mean).
        context: name of the attended modality.
        hidden_dim: size H of the attention's joint space.
        dropout: dropout probability on the attention's joint representation.
        num_glimpses: number G of attention maps.

    Inputs:
        tokens: ``{query: (B, N_q, D_q), context: (B, N, D_v)}``.
        masks: optional, modality -> BoolTensor (B, N_m), True for real tokens;
            a modality absent from ``masks`` has only real tokens.

    Returns:
        ``forward``: Tensor (B, 1, out_dim), one fused token;
        ``forward_pooled``: Tensor (B, out_dim).

    Missing modality: padding context tokens get exactly zero weight; if all
    context tokens of a sample are masked, its attention weights and attended
    vector are zero (never NaN), so the output is ``ReLU(W_q' q) * ReLU(b_v')``.
    A fully masked query gives ``q = 0``. Features of masked tokens never reach
    the output.

    Attributes:
        last_attention: the attention weights of the last forward pass,
            Tensor (B, G, N), detached; rows sum to 1 over the real tokens and
            are 0 on padding (all 0 for a fully masked context). ``None``
            before the first call. For visualisation.

    Parameter count, with D_q, D_v the query and context sizes:
    ``(D_v + 1) * H + (D_q + 1) * H + H * G + (D_q + 1) * out_dim
    + (G * D_v + 1) * out_dim``.
    """

    def __init__(self,
                 in_dims: dict[str, int],
                 out_dim: int,
                 query: str = 'text',
                 context: str = 'image',
                 hidden_dim: int = 512,
                 dropout: float = 0.2,
                 num_glimpses: int = 1,
                 init_cfg: dict | None = None) -> None:
        super().__init__(in_dims, out_dim, init_cfg=init_cfg)
        if query == context:
            raise ValueError(f'TopDownAttentionFusion: query and context must differ, '
                             f'both are {query!r}')
        if set(self.in_dims) != {query, context}:
            raise ValueError(f'TopDownAttentionFusion fuses exactly two modalities, '
                             f'query={query!r} and context={context!r}; in_dims has '
                             f'{sorted(self.in_dims)}')
        check_positive(type(self).__name__, num_glimpses=num_glimpses)
        check_dropout(type(self).__name__, dropout)
        self.query = query
        self.context = context
        self.hidden_dim = int(hidden_dim)
        self.num_glimpses = int(num_glimpses)
        d_q, d_v = self.in_dims[query], self.in_dims[context]

        # Attention: W_v, W_q, then the logit layer W_a.
        self.att_v = nn.Sequential(nn.Linear(d_v, self.hidden_dim), nn.ReLU(inplace=True))
        self.att_q = nn.Sequential(nn.Linear(d_q, self.hidden_dim), nn.ReLU(inplace=True))
        self.att_dropout = nn.Dropout(dropout)
        self.att_logits = nn.Linear(self.hidden_dim, self.num_glimpses, bias=False)
        # Fusion: W_q' and W_v'.
        self.fuse_q = nn.Sequential(nn.Linear(d_q, self.out_dim), nn.ReLU(inplace=True))
        self.fuse_v = nn.Sequential(
            nn.Linear(self.num_glimpses * d_v, self.out_dim), nn.ReLU(inplace=True))

        self.last_attention: torch.Tensor | None = None

    def forward(self, tokens: dict[str, torch.Tensor],
                masks: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        self.check_inputs(tokens)
        name = type(self).__name__
        q_tok, q_mask = masked_tokens(tokens[self.query], masks, self.query, name)
        v, v_mask = masked_tokens(tokens[self.context], masks, self.context, name)

        q = masked_mean(q_tok, q_mask)  # (B, D_q)
        joint = self.att_v(v) * self.att_q(q).unsqueeze(1)  # (B, N, H)
        logits = self.att_logits(self.att_dropout(joint)).transpose(1, 2)  # (B, G, N)
        # Exact zeros on padding, and on the whole row of a fully masked context.
        weights = masked_softmax(logits, v_mask.unsqueeze(1), dim=-1)
        self.last_attention = weights.detach()

        v_att = torch.bmm(weights, v).flatten(1)  # (B, G * D_v)
        fused = self.fuse_q(q) * self.fuse_v(v_att)  # (B, out_dim)
        return fused.unsqueeze(1)

    def forward_pooled(self, tokens: dict[str, torch.Tensor],
                       masks: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """The single fused token as a vector, (B, out_dim)."""
        return self(tokens, masks).squeeze(1)
