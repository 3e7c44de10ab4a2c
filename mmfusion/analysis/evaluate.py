"""What the analysis tools share: a model and its split from CONFIG and CKPT,
and a batch-wise evaluation loop whose batches can be altered on the way.
"""
import contextlib
import copy
from typing import Callable, Dict, List, Optional, Union

import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.evaluator import Evaluator
from mmengine.runner import Runner

from mmfusion.errors import ConfigError
from mmfusion.evaluation.functional import vqa_accuracy

from .attacks import AttackResult, perturb_embeddings

#: raw batch -> raw batch (before the preprocessor), or an attack's result
RawFn = Callable[[dict], Union[dict, AttackResult]]
#: preprocessed batch -> preprocessed batch, e.g. dropping a modality
ProcessedFn = Callable[[dict], dict]


def build_loader(cfg: Config, split: str = 'test', batch_size: Optional[int] = None,
                 num_samples: Optional[int] = None):
    """The ``{split}_dataloader`` of a config (its dataset built once), with
    an optional batch size and the first ``num_samples`` samples only."""
    key = f'{split}_dataloader'
    if cfg.get(key) is None:
        raise ConfigError(f'the config has no {key}')
    loader_cfg = copy.deepcopy(cfg[key])
    if batch_size:
        loader_cfg['batch_size'] = batch_size
    loader_cfg['num_workers'] = 0
    loader_cfg['persistent_workers'] = False
    if num_samples:
        loader_cfg['dataset']['indices'] = int(num_samples)
    return Runner.build_dataloader(loader_cfg)


def build_evaluator(cfg: Config, dataset, split: str = 'test') -> Evaluator:
    """The config's ``{split}_evaluator``, with the dataset's metainfo."""
    ev_cfg = cfg.get(f'{split}_evaluator')
    if ev_cfg is None:
        raise ConfigError(f'the config has no {split}_evaluator')
    evaluator = Evaluator(copy.deepcopy(ev_cfg)) if not isinstance(ev_cfg, dict) or \
        'metrics' not in ev_cfg else Evaluator(copy.deepcopy(ev_cfg['metrics']))
    evaluator.dataset_meta = getattr(dataset, 'metainfo', None)
    return evaluator


def evaluate(model: nn.Module, loader, evaluator: Evaluator, raw_fn: Optional[RawFn] = None,
             processed_fn: Optional[ProcessedFn] = None,
             batches: Optional[List[dict]] = None) -> Dict[str, float]:
    """The metrics of ``model`` on ``loader`` (or on cached raw ``batches``).

    ``raw_fn`` alters each raw batch (it may need gradients: an attack);
    ``processed_fn`` each preprocessed one (e.g. a missing modality).
    """
    model.eval()
    n = 0
    for data in (batches if batches is not None else loader):
        ctx = contextlib.nullcontext()
        if raw_fn is not None:
            data = raw_fn(data)
            if isinstance(data, AttackResult):
                # text adversaries live in embedding space: keep them on
                ctx = perturb_embeddings(model, data.text_deltas)
                data = data.data
        with torch.no_grad(), ctx:
            processed = model.data_preprocessor(data, False)
            if processed_fn is not None:
                processed = processed_fn(processed)
            outputs = model(**processed, mode='predict')
        evaluator.process(data_samples=outputs, data_batch=data)
        n += len(outputs)
    metrics = evaluator.evaluate(n)
    return {k: float(v) for k, v in metrics.items() if hasattr(v, '__float__')}


def per_sample_scores(outputs) -> torch.Tensor:
    """(B,) per-sample score in percent from predicted data samples: 100 x
    correctness for single-label classification, the official VQA accuracy
    of the predicted answer for VQA. Averaged over a split, these are the
    ``accuracy/top1`` and ``vqa/acc`` metrics."""
    scores = []
    for s in outputs:
        if 'pred_answer' in s:
            scores.append(100.0 * vqa_accuracy(s.pred_answer, s.gt_answers))
        elif 'pred_label' in s and 'gt_label' in s:
            scores.append(100.0 * float(int(s.pred_label[0]) == int(s.gt_label[0])))
        else:
            raise ConfigError('per-sample scores need classification (pred_label, gt_label) '
                              'or VQA (pred_answer, gt_answers) predictions; for other tasks '
                              'use the split-level metric (--per-split)')
    return torch.tensor(scores)


__all__ = ['build_evaluator', 'build_loader', 'evaluate', 'per_sample_scores']
