"""Batch augmentations that mix samples: Mixup and CutMix for multimodal batches.

As in mmpretrain, they run on a whole batch after the data preprocessor
(``batch_augments``), because mixing needs a partner sample. Unlike
mmpretrain's, they keep every modality of a mixed sample consistent with
its image and its label:

* the image modality is mixed (Mixup: ``lam * x_i + (1 - lam) * x_j``;
  CutMix: a box of ``x_j`` pasted into ``x_i``);
* every other tensor modality is mixed with the same partner ``j``: one
  with the image's height and width (depth, masks) gets the same box under
  CutMix; any other (an audio spectrogram, a vector) is blended with the
  same ``lam`` (for CutMix, the pasted area's complement);
* the labels become ``lam * y_i + (1 - lam) * y_j``, stored as each data
  sample's ``gt_score`` (C,), which ``ClsHead`` and ``MultiLabelClsHead``
  train on instead of ``gt_label``;
* token inputs (tokenised text) cannot be blended: ``unmixable='error'``
  (default) refuses such a batch, ``'keep'`` leaves sample ``i``'s text
  (use it only when the text does not decide the label).
"""
from typing import Dict, List, Sequence, Tuple

import torch
from torch.distributions import Beta

from mmfusion.errors import ConfigError
from mmfusion.registry import MODELS


class _BatchMix:
    """Common part of Mixup and CutMix.

    Args:
        alpha: ``lam ~ Beta(alpha, alpha)``.
        num_classes: C, the size of the soft labels.
        image_key: the modality that is mixed as an image.
        prob: probability of mixing a given batch.
        unmixable: ``'error'`` or ``'keep'``, for token (dict) inputs.

    ``__call__(inputs, data_samples) -> (inputs, data_samples)``: inputs as
    the data preprocessor outputs them (``image`` (B, C, H, W) ...); the data
    samples get ``gt_score`` (C,) from their ``gt_label`` (a class index, or
    the indices of the positive classes for multi-label data).
    """

    def __init__(self, alpha: float, num_classes: int, image_key: str = 'image',
                 prob: float = 1.0, unmixable: str = 'error') -> None:
        if not alpha > 0:
            raise ConfigError(f'{type(self).__name__}.alpha must be > 0, got {alpha}')
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ConfigError(f'{type(self).__name__}.num_classes must be a positive int, got '
                              f'{num_classes!r}')
        if unmixable not in ('error', 'keep'):
            raise ConfigError(f"{type(self).__name__}.unmixable must be 'error' or 'keep', got "
                              f'{unmixable!r}')
        if not 0.0 <= prob <= 1.0:
            raise ConfigError(f'{type(self).__name__}.prob must be in [0, 1], got {prob}')
        self.alpha = float(alpha)
        self.num_classes = num_classes
        self.image_key = image_key
        self.prob = float(prob)
        self.unmixable = unmixable

    def soft_labels(self, data_samples: Sequence) -> torch.Tensor:
        """(B, C) one-hot / multi-hot rows of the samples' ``gt_label``."""
        rows = torch.zeros(len(data_samples), self.num_classes)
        for i, sample in enumerate(data_samples):
            if 'gt_label' not in sample:
                raise ConfigError(f'{type(self).__name__}: data sample {i} has no gt_label; '
                                  'Mixup/CutMix mix classification labels')
            labels = torch.as_tensor(sample.gt_label).long().reshape(-1)
            if labels.numel() and (labels.min() < 0 or labels.max() >= self.num_classes):
                raise ConfigError(f'{type(self).__name__}: sample {i} has labels '
                                  f'{labels.tolist()} outside [0, num_classes='
                                  f'{self.num_classes})')
            rows[i, labels] = 1.0
        return rows

    def _draw_lam(self) -> float:
        return float(Beta(self.alpha, self.alpha).sample())

    def mix_images(self, image: torch.Tensor, perm: torch.Tensor,
                   lam: float) -> Tuple[torch.Tensor, float, object]:
        """The mixed image, the label weight of sample i and the region
        (used for the other modalities of the image's size)."""
        raise NotImplementedError

    def mix_like_image(self, x: torch.Tensor, perm: torch.Tensor, region: object,
                       lam: float) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, inputs: Dict[str, object],
                 data_samples: List) -> Tuple[Dict[str, object], List]:
        image = inputs.get(self.image_key)
        if not isinstance(image, torch.Tensor) or image.dim() != 4:
            raise ConfigError(f'{type(self).__name__}: the batch has no image modality '
                              f'{self.image_key!r} of shape (B, C, H, W) (it has '
                              f'{sorted(inputs)}); set image_key')
        if self.prob < 1.0 and float(torch.rand(())) >= self.prob:
            return inputs, data_samples
        unmixable = [m for m, v in inputs.items() if isinstance(v, dict)]
        if unmixable and self.unmixable == 'error':
            raise ConfigError(f'{type(self).__name__}: modalities {unmixable} are tokens and '
                              "cannot be blended; set unmixable='keep' to leave each sample's "
                              'own (only when they do not decide the label)')
        batch = image.shape[0]
        perm = torch.randperm(batch, device=image.device)
        lam = self._draw_lam()
        mixed, lam, region = self.mix_images(image, perm, lam)
        out = dict(inputs)
        out[self.image_key] = mixed
        for name, value in inputs.items():
            if name == self.image_key or not isinstance(value, torch.Tensor):
                continue
            if value.dim() == 4 and value.shape[-2:] == image.shape[-2:]:
                out[name] = self.mix_like_image(value, perm, region, lam)
            else:
                perm_v = perm.to(value.device)
                out[name] = lam * value + (1 - lam) * value[perm_v]
        labels = self.soft_labels(data_samples)
        scores = lam * labels + (1 - lam) * labels[perm.cpu()]
        for sample, score in zip(data_samples, scores):
            sample.gt_score = score.to(image.device)
        return out, data_samples


@MODELS.register_module()
class MultiModalMixup(_BatchMix):
    """Mixup (Zhang et al., "mixup: Beyond Empirical Risk Minimization",
    ICLR 2018) of every tensor modality with the same partner and ``lam``.

    Args: see :class:`_BatchMix` (``alpha`` 0.2 as in the paper's ImageNet
    runs). Shapes are unchanged: image (B, C, H, W), others as given.
    """

    def __init__(self, alpha: float = 0.2, **kwargs) -> None:
        super().__init__(alpha, **kwargs)

    def mix_images(self, image, perm, lam):
        return lam * image + (1 - lam) * image[perm], lam, None

    def mix_like_image(self, x, perm, region, lam):
        return lam * x + (1 - lam) * x[perm.to(x.device)]


@MODELS.register_module()
class MultiModalCutMix(_BatchMix):
    """CutMix (Yun et al., "CutMix: Regularization Strategy to Train Strong
    Classifiers with Localizable Features", ICCV 2019): a box of the partner's
    image, of area ``(1 - lam) * H * W``, replaces that region; ``lam`` is then
    corrected to the box actually pasted (after clipping at the border).
    Modalities of the image's size get the same box; others are blended with
    the corrected ``lam``.

    Args: see :class:`_BatchMix` (``alpha`` 1.0 as in the paper).
    """

    def __init__(self, alpha: float = 1.0, **kwargs) -> None:
        super().__init__(alpha, **kwargs)

    def mix_images(self, image, perm, lam):
        h, w = image.shape[-2:]
        cut = (1.0 - lam) ** 0.5
        ch, cw = int(h * cut), int(w * cut)
        cy, cx = int(torch.randint(h, ())), int(torch.randint(w, ()))
        y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
        x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, w)
        region = (y0, y1, x0, x1)
        lam = 1.0 - (y1 - y0) * (x1 - x0) / float(h * w)
        return self.mix_like_image(image, perm, region, lam), lam, region

    def mix_like_image(self, x, perm, region, lam):
        y0, y1, x0, x1 = region
        out = x.clone()
        out[..., y0:y1, x0:x1] = x[perm.to(x.device)][..., y0:y1, x0:x1]
        return out


__all__ = ['MultiModalCutMix', 'MultiModalMixup']
