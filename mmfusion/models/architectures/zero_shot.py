"""Zero-shot classification: a classifier written by the text tower from class names."""
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn.functional as F

from mmfusion.errors import ConfigError
from mmfusion.registry import MODELS
from mmfusion.structures import MultiModalDataSample

from .dual_encoder import DualEncoder

__all__ = ['ZeroShotClassifier', 'build_zero_shot_classifier']


def build_zero_shot_classifier(model: DualEncoder, class_names: Sequence[str],
                               templates: Sequence[str], modality: Optional[str] = None,
                               batch_size: int = 256) -> torch.Tensor:
    """(D, C) class embeddings: each class name in every template, embedded by the
    text tower, averaged over templates and re-normalised (CLIP's prompt
    ensembling; open_clip's ``build_zero_shot_classifier``).

    A template holds ``{}`` (or ``{c}``) where the class name goes, e.g.
    ``'a photo of a {}.'``.
    """
    if not class_names or not templates:
        raise ConfigError('zero-shot classification needs at least one class name and one '
                          f'template, got {len(class_names)} names and {len(templates)} '
                          'templates')
    for t in templates:
        if '{}' not in t and '{c}' not in t:
            raise ConfigError(f'zero-shot template {t!r} has no "{{}}" where the class name '
                              'goes')
    texts = [t.replace('{c}', '{}').format(name) for name in class_names for t in templates]
    emb = model.encode_texts(texts, modality, batch_size)  # (C*T, D), normalised
    emb = emb.view(len(class_names), len(templates), -1).mean(dim=1)
    return F.normalize(emb, dim=-1).T


@MODELS.register_module()
class ZeroShotClassifier(DualEncoder):
    """A :class:`DualEncoder` that classifies an item by the class whose prompts it matches.

    Radford et al., CLIP (ICML 2021), section 3.1.4: the text tower embeds
    every class name in every prompt template, the mean per class is that
    class's weight vector, and an item's scores are the logit-scaled cosine
    similarities. No label is used for training: load a contrastively
    trained checkpoint and test on any classification dataset. It is a
    ``DualEncoder`` (same weights, same state dict), so a config inherits the
    retrieval config and changes ``model.type`` and the test data only; its
    training step is the contrastive one.

    Args:
        class_names: the dataset's classes, in label order, as the text
            tower should read them.
        templates: prompts with ``{}`` for the class name.
        item_modality: the tower that embeds the classified input.
        text_modality: the tower that embeds the prompts (default the
            ``caption_modality``).
        multi_label: one independent score per class in [0, 1], for
            ``MultiLabelMetric`` (whose mAP ranks items per class and needs
            no calibration): the sigmoid of the logits when the model learnt
            a SigLIP bias (calibrated), else ``(cos + 1) / 2`` (a sigmoid of
            CLIP's scaled logits saturates to ties at 1.0). Otherwise the
            softmax over classes, with ``pred_label``.
        **kwargs: :class:`DualEncoder`'s.

    ``predict`` fills ``pred_score`` (C,) (and ``pred_label`` (1,) when
    single-label); the classifier is built once per evaluation (rebuilt
    after training mode).
    """

    def __init__(self, class_names: Sequence[str], templates: Sequence[str] = ('{}', ),
                 item_modality: str = 'image', text_modality: Optional[str] = None,
                 multi_label: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        text_modality = text_modality or self.caption_modality
        for key, name in (('item_modality', item_modality), ('text_modality', text_modality)):
            if name not in self.encoders:
                raise ConfigError(f'model.{key}={name!r} is not a tower of model.encoders '
                                  f'{sorted(self.encoders)}')
        self.class_names = [str(c) for c in class_names]
        self.templates = list(templates)
        self.item_modality = item_modality
        self.text_modality = text_modality
        self.multi_label = multi_label
        self._classifier: Optional[torch.Tensor] = None

    def train(self, mode: bool = True):
        if mode:
            self._classifier = None  # the text tower is changing
        return super().train(mode)

    def classifier(self) -> torch.Tensor:
        """The (D, C) class embeddings, built on first use."""
        if self._classifier is None:
            self._classifier = build_zero_shot_classifier(
                self, self.class_names, self.templates, self.text_modality)
        return self._classifier

    def logits(self, x: Union[torch.Tensor, dict]) -> torch.Tensor:
        """(B, C) logit-scaled cosine similarities (+ bias) of a preprocessed batch."""
        scale, bias = self.scale_and_bias()
        logits = scale * self.encode(self.item_modality, x) @ self.classifier()
        return logits + bias if bias is not None else logits

    def predict(self, inputs: Dict[str, Union[torch.Tensor, dict]],
                data_samples: Optional[List[MultiModalDataSample]] = None
                ) -> List[MultiModalDataSample]:
        if self.item_modality not in inputs:
            raise ConfigError(f'ZeroShotClassifier classifies model.item_modality='
                              f'{self.item_modality!r}, but the batch carries {sorted(inputs)}; '
                              'pack it in the test pipeline')
        if self.multi_label and self.logit_bias is None:
            cos = self.encode(self.item_modality, inputs[self.item_modality]) @ self.classifier()
            scores = (cos + 1) / 2
        else:
            logits = self.logits(inputs[self.item_modality])
            scores = logits.sigmoid() if self.multi_label else logits.softmax(dim=-1)
        if data_samples is None:
            data_samples = [MultiModalDataSample() for _ in range(len(scores))]
        for sample, score in zip(data_samples, scores):
            score = score.detach()
            sample.set_field(score, 'pred_score')
            if not self.multi_label:
                sample.set_field(score.argmax().view(1), 'pred_label')
        return data_samples
