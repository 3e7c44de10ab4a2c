"""Knowledge-distillation losses: logits (Hinton et al.) and features (FitNets)."""
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmfusion.errors import ConfigError
from mmfusion.registry import MODELS


@MODELS.register_module()
class KDLoss(nn.Module):
    """Logit distillation with a temperature (Hinton, Vinyals and Dean,
    "Distilling the Knowledge in a Neural Network", 2015).

    ``loss = T^2 * KL(softmax(t / T) || softmax(s / T))`` averaged over the
    batch; the ``T^2`` keeps the gradient scale independent of ``T`` (paper,
    section 2). With ``use_sigmoid=True`` (multi-label heads) every class is
    its own binary distribution: ``T^2 * BCE(sigmoid(s / T), sigmoid(t / T))``
    averaged over classes.

    Args:
        temperature: ``T`` > 0; higher exposes more of the teacher's
            ranking of the wrong classes ("dark knowledge").
        loss_weight: factor on the loss.
        use_sigmoid: per-class sigmoid instead of a softmax.

    Inputs: student and teacher logits (B, C). Output: a scalar.
    """

    def __init__(self, temperature: float = 4.0, loss_weight: float = 1.0,
                 use_sigmoid: bool = False) -> None:
        super().__init__()
        if not temperature > 0:
            raise ConfigError(f'KDLoss.temperature must be > 0, got {temperature}')
        self.temperature = float(temperature)
        self.loss_weight = float(loss_weight)
        self.use_sigmoid = use_sigmoid

    def forward(self, student_logits: torch.Tensor,
                teacher_logits: torch.Tensor) -> torch.Tensor:
        if student_logits.shape != teacher_logits.shape:
            raise ConfigError(f'KDLoss: student logits {tuple(student_logits.shape)} and teacher '
                              f'logits {tuple(teacher_logits.shape)} differ; the student and '
                              'the teacher must predict the same classes')
        t = self.temperature
        teacher_logits = teacher_logits.detach()
        if self.use_sigmoid:
            loss = F.binary_cross_entropy_with_logits(student_logits / t,
                                                      torch.sigmoid(teacher_logits / t))
        else:
            loss = F.kl_div(F.log_softmax(student_logits / t, dim=1),
                            F.log_softmax(teacher_logits / t, dim=1),
                            reduction='batchmean', log_target=True)
        return self.loss_weight * t * t * loss


@MODELS.register_module()
class FitNetsLoss(nn.Module):
    """Feature distillation with a learnt regressor (Romero et al.,
    "FitNets: Hints for Thin Deep Nets", ICLR 2015).

    The student's feature goes through a learnable projection (the paper's
    regressor) to the teacher's size and is pulled to the teacher's feature
    by the mean squared error. Vectors (B, D_s) use a linear layer; maps
    (B, C_s, H, W) a 1x1 convolution, and the student map is resized to the
    teacher's when they differ; tokens (B, N, D) are averaged over N first.

    Args:
        student_dim: D_s (or C_s); filled in by ``KnowledgeDistiller``.
        teacher_dim: D_t (or C_t); filled in by ``KnowledgeDistiller``.
        loss_weight: factor on the loss.
        spatial: the features are maps (a 1x1 convolution regressor).
        normalize: L2-normalise both features over the channels first,
            which makes the loss independent of the teachers' feature scale.

    Inputs: student and teacher features. Output: a scalar. The regressor
    is part of the distiller (trained with the student, saved with it).
    """

    def __init__(self, student_dim: int, teacher_dim: int, loss_weight: float = 1.0,
                 spatial: bool = False, normalize: bool = False) -> None:
        super().__init__()
        self.loss_weight = float(loss_weight)
        self.spatial = spatial
        self.normalize = normalize
        self.student_dim, self.teacher_dim = int(student_dim), int(teacher_dim)
        self.projection = (nn.Conv2d(student_dim, teacher_dim, 1) if spatial
                           else nn.Linear(student_dim, teacher_dim))

    def forward(self, student_feat: torch.Tensor,
                teacher_feat: torch.Tensor) -> torch.Tensor:
        student_feat, teacher_feat = _flat_tokens(student_feat), _flat_tokens(teacher_feat)
        if student_feat.shape[1] != self.student_dim or teacher_feat.shape[1] != self.teacher_dim:
            raise ConfigError(f'FitNetsLoss expects student features of {self.student_dim} and '
                              f'teacher features of {self.teacher_dim} channels, got '
                              f'{tuple(student_feat.shape)} and {tuple(teacher_feat.shape)}')
        pred = self.projection(student_feat)
        if self.spatial and pred.shape[-2:] != teacher_feat.shape[-2:]:
            pred = F.interpolate(pred, size=teacher_feat.shape[-2:], mode='bilinear',
                                 align_corners=False)
        target = teacher_feat.detach()
        if self.normalize:
            pred, target = F.normalize(pred, dim=1), F.normalize(target, dim=1)
        return self.loss_weight * F.mse_loss(pred, target)


def _flat_tokens(x: torch.Tensor) -> torch.Tensor:
    return x.mean(dim=1) if x.dim() == 3 else x


__all__ = ['FitNetsLoss', 'KDLoss']
