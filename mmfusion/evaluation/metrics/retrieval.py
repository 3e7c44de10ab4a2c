"""Cross-modal retrieval Recall@K (image->text and text->image) for MMEngine evaluators."""
from collections.abc import Sequence
from typing import Any, Optional

import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log
from terminaltables import AsciiTable

from mmfusion.errors import ConfigError
from mmfusion.evaluation.functional.retrieval import retrieval_recall
from mmfusion.registry import METRICS

__all__ = ['RetrievalRecall']


@METRICS.register_module()
class RetrievalRecall(BaseMetric):
    """Recall@K of retrieval in both directions over the whole evaluation split.

    The model embeds every sample once (``DualEncoder`` in ``predict`` mode):
    each data sample holds ``<item>_embeds`` (1, D), the item (an image, an
    audio clip ...), and ``<caption>_embeds`` (n, D), its n >= 0 captions.
    After the split, every item is scored against every caption in chunks
    (:func:`~mmfusion.evaluation.functional.retrieval_recall`): an item query
    is right when any of its captions is in the top K (the COCO / Flickr30k
    protocol, as mmpretrain's ``RetrievalRecall`` and open_clip's
    ``get_clip_metrics``), a caption query when its item is; ties count as
    misses.

    Returned metrics (prefix ``retrieval/``): ``i2t_R@K`` and ``t2i_R@K`` for
    every K, their means ``i2t_mean``, ``t2i_mean``, and ``mean`` (percent);
    the first letters of the modalities name the directions (``a2t`` for
    audio-text).

    Args:
        modalities: (item modality, caption modality).
        topk: the K's.
        chunk_size: queries scored at once (memory: ``chunk_size`` x the
            other side's size floats).
        collect_device, prefix: see ``BaseMetric``.
    """

    default_prefix: Optional[str] = 'retrieval'

    def __init__(self, modalities: Sequence[str] = ('image', 'text'),
                 topk: Sequence[int] = (1, 5, 10), chunk_size: int = 1024,
                 collect_device: str = 'cpu', prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if len(modalities) != 2 or modalities[0] == modalities[1]:
            raise ConfigError(f'RetrievalRecall: modalities must be two different names '
                              f'(item, caption), got {modalities!r}')
        topk = (topk, ) if isinstance(topk, int) else tuple(topk)
        if not topk or any(not isinstance(k, int) or k < 1 for k in topk):
            raise ConfigError(f'RetrievalRecall: topk must be positive ints, got {topk!r}')
        if chunk_size < 1:
            raise ConfigError(f'RetrievalRecall: chunk_size must be >= 1, got {chunk_size}')
        self.modalities = tuple(modalities)
        self.topk = topk
        self.chunk_size = chunk_size

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        item_key, cap_key = (f'{m}_embeds' for m in self.modalities)
        for sample in data_samples:
            missing = [k for k in (item_key, cap_key) if sample.get(k) is None]
            if missing:
                raise ValueError(f'RetrievalRecall needs {missing} in every data sample (the '
                                 f'predict output of a DualEncoder whose towers include '
                                 f'{list(self.modalities)}); found keys {sorted(sample)}')
            item = sample[item_key].detach().float().cpu()
            if item.ndim != 2 or item.shape[0] != 1:
                raise ValueError(f'RetrievalRecall: {item_key} must be (1, D), one item per '
                                 f'sample, got {tuple(item.shape)}')
            self.results.append(dict(item=item[0], captions=sample[cap_key].detach().float().cpu()))

    def compute_metrics(self, results: list) -> dict:
        items = torch.stack([r['item'] for r in results])
        caps = [r['captions'] for r in results]
        owner = torch.cat([torch.full((len(c), ), i, dtype=torch.long)
                           for i, c in enumerate(caps)])
        captions = torch.cat(caps) if caps else items.new_zeros(0, items.shape[1])
        a, b = (m[0] for m in self.modalities)
        metrics = retrieval_recall(items, captions, owner, self.topk, self.chunk_size,
                                   names=(f'{a}2{b}', f'{b}2{a}'))
        rows = [['direction'] + [f'R@{k}' for k in self.topk] + ['mean']]
        for name in (f'{a}2{b}', f'{b}2{a}'):
            rows.append([name] + [f'{metrics[f"{name}_R@{k}"]:.2f}' for k in self.topk] +
                        [f'{metrics[f"{name}_mean"]:.2f}'])
        print_log(f'retrieval over {len(items)} {self.modalities[0]} items and '
                  f'{len(captions)} {self.modalities[1]} captions:\n' + AsciiTable(rows).table,
                  logger='current')
        return metrics
