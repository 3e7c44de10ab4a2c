"""What every encoder returns: one :class:`ModalityFeatures` per modality."""
from dataclasses import dataclass
from typing import List, Optional

import torch
from mmengine.model import BaseModule


@dataclass
class ModalityFeatures:
    """The views of one modality's features that fusion modules consume.

    Attributes:
        pooled: (B, D) one vector per sample, for vector fusion.
        tokens: (B, N, D) a sequence (text tokens, image grid cells, audio
            frames), for token fusion. ``None`` when the encoder has none.
        mask: (B, N) bool, True where a token is real (not padding).
            ``None`` means every token is real.
        maps: multi-scale feature maps [(B, C_l, H_l, W_l), ...], for
            spatial fusion in dense tasks.
    """
    pooled: torch.Tensor
    tokens: Optional[torch.Tensor] = None
    mask: Optional[torch.Tensor] = None
    maps: Optional[List[torch.Tensor]] = None


def masked_mean(tokens: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
    """Mean over the token axis of (B, N, D) ``tokens``, ignoring padding."""
    if mask is None:
        return tokens.mean(dim=1)
    weights = mask.to(tokens.dtype).unsqueeze(-1)
    return (tokens * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


class BaseEncoder(BaseModule):
    """Base class of modality encoders.

    Subclasses set ``self.out_dim`` (the size D of ``pooled`` and ``tokens``)
    in ``__init__`` and implement ``forward(x) -> ModalityFeatures``.
    """
    out_dim: int
