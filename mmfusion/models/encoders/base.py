"""What every encoder returns: one :class:`ModalityFeatures` per modality."""
from dataclasses import dataclass
from typing import List, Optional

import torch
from mmengine.model import BaseModule

# Defined with the other mask helpers in layers; re-exported because the text
# encoders pool with it and callers import it from here.
from ..layers.masking import masked_mean

__all__ = ['BaseEncoder', 'ModalityFeatures', 'masked_mean']


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


class BaseEncoder(BaseModule):
    """Base class of modality encoders.

    Subclasses set ``self.out_dim`` (the size D of ``pooled`` and ``tokens``)
    in ``__init__`` and implement ``forward(x) -> ModalityFeatures``; those
    wrapping a library network keep it in ``self.model`` and may call
    :meth:`freeze` on it.
    """
    out_dim: int
    frozen: bool = False

    def freeze(self) -> None:
        """Fix ``self.model``: no gradients, and eval mode (e.g. batch-norm
        statistics) even while the rest of the model trains."""
        self.frozen = True
        self.model.requires_grad_(False)
        self.model.eval()

    def train(self, mode: bool = True):
        super().train(mode)
        if self.frozen:
            self.model.eval()
        return self
