"""Answer classification head for VQA."""
import os.path as osp
from typing import Dict, List, Optional, Sequence, Union

import torch
from mmengine.logging import print_log
from mmengine.model import BaseModule

from mmfusion.errors import ConfigError
from mmfusion.evaluation.functional import vqa_soft_scores
from mmfusion.registry import MODELS
from mmfusion.structures import MultiModalDataSample
from mmfusion.utils.extra_state import decode_extra_state, encode_extra_state

from ..layers import classifier_mlp


def load_answer_vocab(spec: Union[str, Sequence[str], dict, None]) -> List[str]:
    """An answer vocabulary from a list or a text file (one answer a line).

    A config normally leaves ``answer_vocab`` out (``None``), or gives
    ``dict(dataset=..., min_count=..., max_size=...)``: the vocabulary is
    data, and :func:`mmfusion.apis.resolve_vocabularies` replaces either with
    the list built from the training set (or read from a checkpoint) before
    the model is built. mmfusion's tools do that; a head built directly from
    such a config gets an error saying so.
    """
    if spec is None or isinstance(spec, dict):
        raise ConfigError(
            'VQAHead.answer_vocab is not resolved yet (it is '
            f'{"a dataset spec" if spec is not None else "None: from the training set"}). '
            'mmfusion\'s tools fill it in; in your own code call '
            'mmfusion.apis.resolve_vocabularies(cfg) before building the model, or give '
            'a list of answers or a file with one answer a line')
    if isinstance(spec, str):
        if not osp.isfile(spec):
            raise FileNotFoundError(f'answer vocabulary file not found: {spec}')
        with open(spec, encoding='utf-8') as f:
            return [line.rstrip('\n') for line in f if line.strip()]
    return [str(answer) for answer in spec]


@MODELS.register_module()
class VQAHead(BaseModule):
    """Scores every answer of a fixed vocabulary (VQA as classification).

    Args:
        in_dim: size of the fused vector (filled in by the model).
        answer_vocab: list of answers or a file; by default (``None``) built
            from the training set's annotator answers by the tools (see
            :func:`load_answer_vocab`).
        hidden_dim: an MLP hidden layer (0: a single linear layer).
        dropout: before the classifier.
        loss: default sigmoid cross-entropy against VQA soft scores summed over
            answers (Teney et al., 2018, "Tips and Tricks for VQA").
        topk: how many answers :meth:`predict` keeps in ``pred_topk``.

    Input: (B, in_dim). Output: (B, A) logits, A = ``len(answer_vocab)``.
    Targets: for each answer, the official VQA accuracy predicting it would
    score (``vqa_soft_scores`` of the 10 annotator answers).
    """

    def __init__(self, in_dim: int, answer_vocab: Union[str, Sequence[str], dict, None] = None,
                 hidden_dim: int = 512, dropout: float = 0.2,
                 loss: Optional[dict] = None, topk: int = 5,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.answers = load_answer_vocab(answer_vocab)
        if not self.answers:
            raise ValueError('VQAHead: the answer vocabulary is empty')
        self.answer_to_idx = {a: i for i, a in enumerate(self.answers)}
        self.classifier = classifier_mlp(in_dim, len(self.answers), hidden_dim, dropout)
        self.loss_module = MODELS.build(loss or dict(
            type='CrossEntropyLoss', use_sigmoid=True, class_reduction='sum'))
        self.topk = topk

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.classifier(feats)

    def soft_targets(self, data_samples: Sequence[MultiModalDataSample],
                     device: torch.device) -> torch.Tensor:
        """(B, A) VQA soft scores of the vocabulary answers."""
        targets = torch.zeros(len(data_samples), len(self.answers))
        for i, sample in enumerate(data_samples):
            for answer, score in vqa_soft_scores(sample.gt_answers).items():
                idx = self.answer_to_idx.get(answer)
                if idx is not None:
                    targets[i, idx] = score
        return targets.to(device)

    def loss(self, feats: torch.Tensor,
             data_samples: Sequence[MultiModalDataSample]) -> Dict[str, torch.Tensor]:
        logits = self(feats)
        targets = self.soft_targets(data_samples, logits.device)
        if not getattr(self.loss_module, 'use_sigmoid', True):
            # softmax cross-entropy needs a distribution over answers
            targets = targets / targets.sum(dim=1, keepdim=True).clamp(min=1e-6)
        return dict(loss=self.loss_module(logits, targets))

    def predict(self, feats: torch.Tensor,
                data_samples: Optional[Sequence[MultiModalDataSample]] = None
                ) -> List[MultiModalDataSample]:
        logits = self(feats)
        # scores on the scale the loss trained: independent sigmoids, or a softmax
        use_sigmoid = getattr(self.loss_module, 'use_sigmoid', True)
        scores = logits.sigmoid() if use_sigmoid else logits.softmax(dim=1)
        top_scores, top_idx = scores.topk(min(self.topk, scores.size(1)), dim=1)
        if data_samples is None:
            data_samples = [MultiModalDataSample() for _ in range(scores.size(0))]
        for sample, s, ts, ti in zip(data_samples, scores, top_scores, top_idx):
            sample.pred_score = s.detach()
            sample.pred_answer = self.answers[int(ti[0])]
            sample.set_field([self.answers[int(i)] for i in ti], 'pred_topk_answers')
            sample.set_field(ts.detach(), 'pred_topk_scores')
        return list(data_samples)

    # The answer list travels with the weights (see mmfusion.utils.extra_state).
    def get_extra_state(self) -> torch.Tensor:
        return encode_extra_state(dict(answers=list(self.answers)))

    def set_extra_state(self, state) -> None:
        answers = (decode_extra_state(state) or {}).get('answers')
        if not answers or answers == self.answers:
            return
        if len(answers) != len(self.answers):
            raise ValueError(f'VQAHead: the checkpoint was trained with {len(answers)} answers, '
                             f'this model has {len(self.answers)}; build the head with the '
                             'checkpoint\'s answer vocabulary (answer_vocab.txt in its work dir)')
        print_log('VQAHead: the answer vocabulary in the checkpoint differs from the one built '
                  'from the config; using the checkpoint\'s.', logger='current')
        self.answers = list(answers)
        self.answer_to_idx = {a: i for i, a in enumerate(self.answers)}

    def save_vocabulary(self, out_dir: str) -> None:
        """Write ``out_dir/answer_vocab.txt``, one answer a line, in index order."""
        with open(osp.join(out_dir, 'answer_vocab.txt'), 'w', encoding='utf-8') as f:
            f.write('\n'.join(self.answers) + '\n')


__all__ = ['VQAHead', 'load_answer_vocab']
