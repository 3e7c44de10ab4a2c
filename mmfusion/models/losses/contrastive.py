"""Contrastive losses of paired embeddings: CLIP's InfoNCE and SigLIP's sigmoid loss.

Both take L2-normalised features of two modalities, one row per pair, and the
model's learnable (log-)temperature, and are right in distributed training:
each rank gathers every rank's features *with gradient for its own*
(``torch.distributed.nn.functional.all_gather``, open_clip's
``gather_with_grad``) and scores only its local rows against the whole global
batch (open_clip's ``local_loss``). Summed over ranks, these local losses are
the single-process loss on the global batch (times the world size for
SigLIP, whose loss is a sum over pairs); DDP's gradient average then gives
exactly the single-process gradient. Gathering without gradient (as
mmpretrain's BLIP retrieval does) drops the other ranks' terms from each
rank's gradient and silently changes the objective.
"""
from typing import Optional, Tuple

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from mmfusion.registry import MODELS


def _world() -> Tuple[int, int]:
    """(rank, world size) of the default process group, (0, 1) without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather_features(feats: torch.Tensor, with_grad: bool = True) -> torch.Tensor:
    """All ranks' ``feats`` (B, D) concatenated in rank order: (world * B, D).

    With ``with_grad`` the gather is differentiable (its backward sums every
    rank's gradient for this rank's rows); without it only the local rows keep
    their gradient. Every rank must pass the same batch size B.
    """
    rank, world = _world()
    if world == 1:
        return feats
    if with_grad:
        from torch.distributed.nn.functional import all_gather
        return torch.cat(all_gather(feats), dim=0)
    parts = [torch.empty_like(feats) for _ in range(world)]
    dist.all_gather(parts, feats.detach().contiguous())
    parts[rank] = feats  # the local rows keep their gradient
    return torch.cat(parts, dim=0)


@MODELS.register_module()
class ClipLoss(nn.Module):
    """Symmetric InfoNCE over a batch of pairs.

    Radford et al., "Learning Transferable Visual Models From Natural
    Language Supervision" (CLIP), ICML 2021; distributed as open_clip's
    ``ClipLoss`` (``local_loss=True``, ``gather_with_grad=True``).

    Args:
        local_loss: score the local rows against the global batch (B x world*B
            logits) rather than the whole global batch on every rank
            (world*B squared). Together with ``gather_with_grad`` the gradient
            is the single-process one; with ``local_loss=False`` and
            ``gather_with_grad=True`` every rank computes the whole loss and
            DDP's average returns ``world`` times the single-process gradient
            (open_clip's documented caveat), so that is refused.
        gather_with_grad: see :func:`gather_features`.
        loss_weight: a multiplier on the result.

    ``forward(feats_a (B, D), feats_b (B, D), logit_scale ()) -> ()``: row i
    of ``feats_a`` and row i of ``feats_b`` are a positive pair, every other
    row of the (global) batch a negative; the logits are
    ``logit_scale * a @ b.T``; the loss is the mean of the a->b and b->a
    cross-entropies.
    """

    # open_clip's initial temperature, 0.07
    default_init_logit_scale = float(torch.log(torch.tensor(1 / 0.07)))
    default_init_logit_bias: Optional[float] = None

    def __init__(self, local_loss: bool = True, gather_with_grad: bool = True,
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        if gather_with_grad and not local_loss:
            raise ValueError('ClipLoss: gather_with_grad=True needs local_loss=True, otherwise '
                             'each rank computes the whole global loss and DDP averages world '
                             'size times the single-process gradient')
        self.local_loss = local_loss
        self.gather_with_grad = gather_with_grad
        self.loss_weight = loss_weight

    def forward(self, feats_a: torch.Tensor, feats_b: torch.Tensor, logit_scale: torch.Tensor,
                logit_bias: Optional[torch.Tensor] = None) -> torch.Tensor:
        rank, world = _world()
        all_a = gather_features(feats_a, self.gather_with_grad)
        all_b = gather_features(feats_b, self.gather_with_grad)
        if self.local_loss or world == 1:
            logits_a = logit_scale * feats_a @ all_b.T
            logits_b = logit_scale * feats_b @ all_a.T
            labels = torch.arange(feats_a.shape[0], device=feats_a.device) + rank * feats_a.shape[0]
        else:
            logits_a = logit_scale * all_a @ all_b.T
            logits_b = logits_a.T
            labels = torch.arange(all_a.shape[0], device=feats_a.device)
        if logit_bias is not None:
            logits_a, logits_b = logits_a + logit_bias, logits_b + logit_bias
        loss = (F.cross_entropy(logits_a, labels) + F.cross_entropy(logits_b, labels)) / 2
        return self.loss_weight * loss


@MODELS.register_module()
class SigLipLoss(nn.Module):
    """Pairwise sigmoid loss: every (a_i, b_j) is a binary match / no-match.

    Zhai et al., "Sigmoid Loss for Language Image Pre-Training" (SigLIP),
    ICCV 2023. open_clip exchanges text features between neighbouring ranks
    to keep one B x B block in memory at a time; here the local rows are
    scored against the gathered global batch in one B x world*B block, which
    is simpler and, at the batch sizes a CPU or a few GPUs take, as small as
    the gathered features themselves.

    Args:
        gather_with_grad: see :func:`gather_features`.
        loss_weight: a multiplier on the result.

    ``forward(feats_a (B, D), feats_b (B, D), logit_scale (), logit_bias ())
    -> ()``: ``-sum log sigmoid(z_ij * (scale * a_i . b_j + bias)) / B`` with
    z = +1 on the diagonal of the global batch, -1 elsewhere.
    """

    # the paper's initialisation: t' = log 10, b = -10
    default_init_logit_scale = float(torch.log(torch.tensor(10.0)))
    default_init_logit_bias: Optional[float] = -10.0

    def __init__(self, gather_with_grad: bool = True, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.gather_with_grad = gather_with_grad
        self.loss_weight = loss_weight

    def forward(self, feats_a: torch.Tensor, feats_b: torch.Tensor, logit_scale: torch.Tensor,
                logit_bias: Optional[torch.Tensor] = None) -> torch.Tensor:
        if logit_bias is None:
            raise ValueError('SigLipLoss needs a logit_bias (the model creates one when its '
                             'loss is SigLipLoss)')
        rank, world = _world()
        all_b = gather_features(feats_b, self.gather_with_grad)
        logits = logit_scale * feats_a @ all_b.T + logit_bias
        batch = feats_a.shape[0]
        signs = -torch.ones_like(logits)
        idx = torch.arange(batch, device=logits.device)
        signs[idx, idx + rank * batch] = 1.0
        loss = -F.logsigmoid(signs * logits).sum() / batch
        return self.loss_weight * loss


__all__ = ['ClipLoss', 'SigLipLoss', 'gather_features']
