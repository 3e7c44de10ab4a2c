"""Class-imbalance remedies: a repeat-factor sampler and MMEngine's
``ClassBalancedDataset`` for mmfusion's datasets.

Both use repeat-factor sampling (Gupta, Dollar and Girshick, "LVIS: A
Dataset for Large Vocabulary Instance Segmentation", CVPR 2019, sec. 5):
class ``c`` whose fraction of samples is ``f(c)`` gets
``r(c) = max(1, sqrt(t / f(c)))`` and a sample the largest ``r(c)`` of its
labels, so classes rarer than ``t`` are repeated and frequent ones are not
thinned out.

The labels are read from ``dataset.get_data_info(i)[label_key]`` (an int or
a list of ints, ``gt_label`` by default), so any mmfusion dataset works
without a ``get_cat_ids`` of its own.
"""
import math
from collections import Counter
from typing import Iterator, List, Optional, Sequence

import numpy as np
import torch
from mmengine.dataset import ClassBalancedDataset
from mmengine.dist import get_dist_info, sync_random_seed
from torch.utils.data import Sampler

from mmfusion.errors import ConfigError
from mmfusion.registry import DATA_SAMPLERS, DATASETS


def sample_labels(dataset, idx: int, label_key: str = 'gt_label') -> List[int]:
    """The class labels of sample ``idx`` (a list; empty for none)."""
    info = dataset.get_data_info(idx)
    if label_key not in info:
        raise ConfigError(f'class-balanced sampling reads {label_key!r} from each sample, but '
                          f'sample {idx} of {type(dataset).__name__} has only {sorted(info)}; '
                          'set label_key')
    value = info[label_key]
    if isinstance(value, (list, tuple, np.ndarray, torch.Tensor)):
        return [int(v) for v in np.asarray(value).reshape(-1)]
    return [int(value)]


def repeat_factors(labels: Sequence[Sequence[int]], repeat_thr: float) -> np.ndarray:
    """LVIS repeat factors (one per sample) of the given per-sample labels."""
    if not repeat_thr > 0:
        raise ConfigError(f'repeat_thr must be > 0, got {repeat_thr}')
    num = len(labels)
    freq = Counter(c for ls in labels for c in set(ls))
    class_factor = {c: max(1.0, math.sqrt(repeat_thr / (n / num))) for c, n in freq.items()}
    return np.array([max((class_factor[c] for c in set(ls)), default=1.0) for ls in labels])


@DATA_SAMPLERS.register_module()
class RepeatFactorSampler(Sampler):
    """Oversample the samples of rare classes (LVIS repeat factors).

    Each epoch, sample ``i`` appears ``floor(r_i)`` times plus once more with
    probability ``r_i - floor(r_i)`` (stochastic rounding, as in detectron2's
    ``RepeatFactorTrainingSampler``), in a random order; the ranks share the
    order and take every ``world_size``-th index. Epochs therefore hold about
    ``sum(r_i)`` samples.

    Args:
        dataset: any dataset with ``get_data_info`` (mmfusion's datasets).
        repeat_thr: ``t``: classes in fewer than this fraction of the samples
            are oversampled.
        label_key: the info field with the label(s).
        shuffle: shuffle each epoch (else the repeated indices in order).
        seed: random seed; ``None`` shares a random one across ranks.

    Yields dataset indices. ``repeat_factors`` (N,) holds every ``r_i``.
    """

    def __init__(self, dataset, repeat_thr: float = 0.5, label_key: str = 'gt_label',
                 shuffle: bool = True, seed: Optional[int] = None) -> None:
        self.dataset = dataset
        if hasattr(dataset, 'full_init'):
            dataset.full_init()
        labels = [sample_labels(dataset, i, label_key) for i in range(len(dataset))]
        self.repeat_factors = repeat_factors(labels, repeat_thr)
        self.rank, self.world_size = get_dist_info()
        self.shuffle = shuffle
        self.seed = sync_random_seed() if seed is None else seed
        self.epoch = 0

    def _indices(self) -> List[int]:
        g = torch.Generator()
        g.manual_seed(self.seed + self.epoch)
        factors = torch.as_tensor(self.repeat_factors, dtype=torch.double)
        whole = factors.floor()
        extra = (torch.rand(len(factors), generator=g, dtype=torch.double)
                 < factors - whole).double()
        counts = (whole + extra).long().tolist()
        indices = [i for i, n in enumerate(counts) for _ in range(n)]
        if self.shuffle:
            indices = [indices[j] for j in torch.randperm(len(indices), generator=g).tolist()]
        return indices

    def __iter__(self) -> Iterator[int]:
        return iter(self._indices()[self.rank::self.world_size])

    def __len__(self) -> int:
        # the epoch size varies with the rounding; this is this epoch's
        return len(self._indices()[self.rank::self.world_size])

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch


@DATASETS.register_module()
class MultiModalClassBalancedDataset(ClassBalancedDataset):
    """MMEngine's ``ClassBalancedDataset`` for mmfusion's datasets.

    MMEngine's wrapper repeats each sample ``ceil(r_i)`` times (a fixed,
    larger dataset) and asks the wrapped dataset for ``get_cat_ids``, which
    mmfusion's datasets do not have; this one reads the labels from
    ``get_data_info(i)[label_key]`` instead.

    Args:
        dataset: the dataset config or object to wrap.
        oversample_thr: LVIS's ``t``.
        label_key: the info field with the label(s).
        lazy_init: as in MMEngine.
    """

    def __init__(self, dataset, oversample_thr: float, label_key: str = 'gt_label',
                 lazy_init: bool = False) -> None:
        self.label_key = label_key
        super().__init__(dataset, oversample_thr, lazy_init=lazy_init)

    def _get_repeat_factors(self, dataset, repeat_thr: float) -> List[float]:
        labels = [sample_labels(dataset, i, self.label_key) for i in range(len(dataset))]
        return repeat_factors(labels, repeat_thr).tolist()


__all__ = ['MultiModalClassBalancedDataset', 'RepeatFactorSampler', 'repeat_factors',
           'sample_labels']
