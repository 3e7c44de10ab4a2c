"""Multi-task data: a mixture of datasets, one per task, sampled by per-task ratios.

Three pieces, used together in a multi-task config::

    train_dataloader = dict(
        batch_size=32,
        sampler=dict(type='MultiTaskSampler', ratios=dict(vqa=0.5, itm=0.3, ml=0.2)),
        batch_sampler=dict(type='TaskBatchSampler'),
        dataset=dict(type='MultiTaskDataset', datasets=dict(vqa=..., itm=..., ml=...)))

* :class:`MultiTaskDataset` concatenates the task datasets (each with its own
  pipeline) and writes the task name into every data sample's metainfo
  (``data_sample.task``): the one data sample type carries everything, the
  task is one more field of it;
* :class:`MultiTaskSampler` draws, each epoch, which task every position of
  the epoch belongs to with the given ratios, then a sample of that task
  (shuffled, without replacement until the task is exhausted);
* :class:`TaskBatchSampler` groups the indices into batches of one task
  each, so that a batch has one set of modalities and one head (a VQA batch
  carries a question, a multi-label batch none). It also serves evaluation
  behind MMEngine's ``DefaultSampler(shuffle=False)``, where every sample is
  used exactly once.

The idea of a sampler that mixes datasets by ratio and a batch sampler that
groups its indices is mmdet's ``MultiDataSampler`` /
``MultiDataAspectRatioBatchSampler``; written here because those group by
image aspect ratio and need mmdet.
"""
import math
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.dist import get_dist_info, sync_random_seed
from torch.utils.data import BatchSampler, Dataset, Sampler

from mmfusion.errors import ConfigError
from mmfusion.registry import DATA_SAMPLERS, DATASETS


@DATASETS.register_module()
class MultiTaskDataset(Dataset):
    """Several datasets, one per task, as one dataset.

    Args:
        datasets: task name -> dataset config (or a built dataset). The
            order of the dict is the order of the indices: task ``k``'s
            samples follow those of tasks ``0..k-1``.
        lazy_init: do not load the annotations until :meth:`full_init`.

    ``dataset[i]`` is what the task's own dataset returns (``dict(inputs=...,
    data_samples=MultiModalDataSample)``) with ``data_samples.task`` set to the
    task name (a metainfo field). ``get_data_info(i)`` adds ``task`` to the
    task dataset's info dict.

    ``metainfo``: ``tasks`` (the names, in order), ``task_sizes`` (task ->
    number of samples) and ``task_metainfo`` (task -> that dataset's
    metainfo, e.g. its ``classes``); :class:`MultiTaskMetric` hands each
    task's metric its own.
    """

    def __init__(self, datasets: Dict[str, Union[dict, Dataset]], lazy_init: bool = False) -> None:
        if not isinstance(datasets, dict) or not datasets:
            raise ConfigError('MultiTaskDataset.datasets must be a non-empty dict of task name -> '
                              f'dataset config, got {type(datasets).__name__}')
        self.tasks: List[str] = list(datasets)
        self.datasets: Dict[str, Dataset] = {}
        for task, cfg in datasets.items():
            if isinstance(cfg, dict):
                if 'type' not in cfg:
                    raise ConfigError(f'MultiTaskDataset.datasets.{task} needs a type')
                cfg = dict(cfg)
                # MMEngine datasets load their annotations in full_init()
                cfg.setdefault('lazy_init', True)
                self.datasets[task] = DATASETS.build(cfg)
            else:
                self.datasets[task] = cfg
        self._fully_initialized = False
        self._offsets: List[int] = []
        if not lazy_init:
            self.full_init()

    def full_init(self) -> None:
        """Load every task's annotations and fix the index layout."""
        if self._fully_initialized:
            return
        for dataset in self.datasets.values():
            if hasattr(dataset, 'full_init'):
                dataset.full_init()
        sizes = [len(d) for d in self.datasets.values()]
        empty = [t for t, n in zip(self.tasks, sizes) if n == 0]
        if empty:
            raise ConfigError(f'MultiTaskDataset.datasets: the datasets of tasks {empty} hold no '
                              'samples')
        self._offsets = np.cumsum([0] + sizes).tolist()
        self._fully_initialized = True

    @property
    def metainfo(self) -> dict:
        self.full_init()
        return dict(tasks=list(self.tasks),
                    task_sizes={t: len(d) for t, d in self.datasets.items()},
                    task_metainfo={t: dict(getattr(d, 'metainfo', {}) or {})
                                   for t, d in self.datasets.items()})

    def __len__(self) -> int:
        self.full_init()
        return self._offsets[-1]

    def locate(self, idx: int) -> Tuple[str, int]:
        """(task, index inside the task's dataset) of global index ``idx``."""
        self.full_init()
        if idx < 0:
            idx += len(self)
        if not 0 <= idx < len(self):
            raise IndexError(f'MultiTaskDataset index {idx} out of range [0, {len(self)})')
        k = int(np.searchsorted(self._offsets, idx, side='right')) - 1
        return self.tasks[k], idx - self._offsets[k]

    def task_of(self, idx: int) -> str:
        """The task of global index ``idx``."""
        return self.locate(idx)[0]

    def task_range(self, task: str) -> range:
        """The global indices of ``task``'s samples."""
        self.full_init()
        k = self.tasks.index(task)
        return range(self._offsets[k], self._offsets[k + 1])

    def get_data_info(self, idx: int) -> dict:
        task, local = self.locate(idx)
        info = dict(self.datasets[task].get_data_info(local))
        info['task'] = task
        return info

    def __getitem__(self, idx: int) -> dict:
        task, local = self.locate(idx)
        item = self.datasets[task][local]
        samples = item.get('data_samples') if isinstance(item, dict) else None
        if samples is None:
            raise ConfigError(f'MultiTaskDataset.datasets.{task}: its pipeline must end with '
                              'PackMultiModalInputs (the task is written into the data sample)')
        samples.set_metainfo(dict(task=task))
        return item


def _as_multi_task(dataset, what: str) -> MultiTaskDataset:
    if not isinstance(dataset, MultiTaskDataset):
        raise ConfigError(f'{what} needs a MultiTaskDataset, got {type(dataset).__name__}; set '
                          "the data loader's dataset to dict(type='MultiTaskDataset', "
                          'datasets=dict(<task>=...))')
    return dataset


def check_task_ratios(ratios: Dict[str, float], tasks: Sequence[str],
                      key: str = 'sampler.ratios', tol: float = 1e-3) -> Dict[str, float]:
    """Validate per-task sampling ratios; returns them as floats.

    Ratios are fractions of the samples drawn: one per task, each >= 0, at
    least one > 0, summing to 1 (within ``tol``). A sum far from 1 is most
    likely a typo (``0.5, 0.3, 0.3``), so it is an error rather than being
    renormalised silently.

    Raises:
        ConfigError: naming ``key``, the tasks and what was expected.
    """
    if not isinstance(ratios, dict):
        raise ConfigError(f'{key} must be a dict of task -> fraction, got {ratios!r}')
    unknown = sorted(set(ratios) - set(tasks))
    missing = [t for t in tasks if t not in ratios]
    if unknown or missing:
        raise ConfigError(f'{key} must name exactly the dataset\'s tasks {list(tasks)} '
                          f'(unknown: {unknown}, missing: {missing})')
    out = {}
    for task in tasks:
        value = ratios[task]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                not math.isfinite(value) or value < 0:
            raise ConfigError(f'{key}.{task} must be a finite number >= 0, got {value!r}')
        out[task] = float(value)
    total = sum(out.values())
    if total <= 0:
        raise ConfigError(f'{key}: every ratio is 0, so no task would be sampled')
    if abs(total - 1.0) > tol:
        raise ConfigError(f'{key} must sum to 1 (fractions of the samples drawn), but '
                          f'{" + ".join(f"{v:g}" for v in out.values())} = {total:g}')
    return out


@DATA_SAMPLERS.register_module()
class MultiTaskSampler(Sampler):
    """Draw samples of a :class:`MultiTaskDataset` with per-task ratios.

    Each epoch has ``num_samples`` positions (default: the dataset's size).
    Every position picks a task with probability ``ratios[task]`` (so task
    ``t`` gets about ``ratios[t] * num_samples`` samples, however large its
    dataset), then the next index of a fresh random permutation of that
    task's samples (a small task cycles through several permutations, a
    large one is subsampled). In distributed training the ranks draw the
    same sequence from a shared seed and take every ``world_size``-th
    position, as MMEngine's ``DefaultSampler`` does.

    Args:
        dataset: a :class:`MultiTaskDataset`.
        ratios: task -> fraction of the samples (see
            :func:`check_task_ratios`). ``None``: in proportion to the
            dataset sizes (plain concatenation).
        num_samples: positions per epoch over all ranks.
        shuffle: ``False`` keeps each task's samples in order (the task of
            each position is still drawn).
        seed: the random seed; ``None`` draws one shared by all ranks.

    Yields global dataset indices; ``len()`` is this rank's count.
    """

    def __init__(self, dataset: MultiTaskDataset, ratios: Optional[Dict[str, float]] = None,
                 num_samples: Optional[int] = None, shuffle: bool = True,
                 seed: Optional[int] = None) -> None:
        self.dataset = _as_multi_task(dataset, 'MultiTaskSampler')
        tasks = self.dataset.tasks
        if ratios is None:
            total = len(self.dataset)
            ratios = {t: len(self.dataset.task_range(t)) / total for t in tasks}
        self.ratios = check_task_ratios(ratios, tasks, 'train_dataloader.sampler.ratios')
        if num_samples is not None and (not isinstance(num_samples, int) or num_samples < 1):
            raise ConfigError('train_dataloader.sampler.num_samples must be a positive int, got '
                              f'{num_samples!r}')
        self.total = num_samples if num_samples is not None else len(self.dataset)
        self.rank, self.world_size = get_dist_info()
        self.shuffle = shuffle
        self.seed = sync_random_seed() if seed is None else seed
        self.epoch = 0

    def _sequence(self) -> List[int]:
        g = torch.Generator()
        g.manual_seed(self.seed + self.epoch)
        tasks = self.dataset.tasks
        probs = torch.tensor([self.ratios[t] for t in tasks], dtype=torch.double)
        choice = torch.multinomial(probs, self.total, replacement=True, generator=g).tolist()
        counts = np.bincount(choice, minlength=len(tasks))
        pools = []
        for k, task in enumerate(tasks):
            span = self.dataset.task_range(task)
            need, order = int(counts[k]), []
            while len(order) < need:
                perm = (torch.randperm(len(span), generator=g).tolist() if self.shuffle
                        else list(range(len(span))))
                order.extend(span.start + i for i in perm)
            pools.append(iter(order[:need]))
        return [next(pools[k]) for k in choice]

    def __iter__(self) -> Iterator[int]:
        return iter(self._sequence()[self.rank::self.world_size])

    def __len__(self) -> int:
        return len(range(self.rank, self.total, self.world_size))

    def set_epoch(self, epoch: int) -> None:
        """A new draw each epoch (called by MMEngine's ``DistSamplerSeedHook``)."""
        self.epoch = epoch


@DATA_SAMPLERS.register_module()
class TaskBatchSampler(BatchSampler):
    """Group a sampler's indices into batches that hold one task each.

    Indices are kept in one bucket per task; a bucket that reaches
    ``batch_size`` is yielded. At the end of the epoch the incomplete buckets
    are yielded too, unless ``drop_last``. The order of the sampler is kept
    within each task, so behind ``DefaultSampler(shuffle=False)`` every
    sample is evaluated exactly once.

    Args:
        sampler: any sampler over a :class:`MultiTaskDataset` (MMEngine
            passes the data loader's ``sampler``).
        batch_size: samples per batch (MMEngine passes the data loader's).
        drop_last: drop each task's last incomplete batch.
    """

    def __init__(self, sampler: Sampler, batch_size: int, drop_last: bool = False) -> None:
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f'TaskBatchSampler: batch_size must be a positive int, got '
                              f'{batch_size!r}')
        self.sampler = sampler
        self.dataset = _as_multi_task(getattr(sampler, 'dataset', None), 'TaskBatchSampler')
        self.batch_size = batch_size
        self.drop_last = drop_last

    def __iter__(self) -> Iterator[List[int]]:
        buckets: Dict[str, List[int]] = {t: [] for t in self.dataset.tasks}
        for idx in self.sampler:
            bucket = buckets[self.dataset.task_of(idx)]
            bucket.append(idx)
            if len(bucket) == self.batch_size:
                yield list(bucket)
                bucket.clear()
        if not self.drop_last:
            for bucket in buckets.values():
                if bucket:
                    yield list(bucket)

    def __len__(self) -> int:
        # the task counts of this epoch's draw: a seeded sampler gives the
        # same sequence each time it is iterated within an epoch
        counts: Dict[str, int] = {}
        for idx in self.sampler:
            task = self.dataset.task_of(idx)
            counts[task] = counts.get(task, 0) + 1
        if self.drop_last:
            return sum(n // self.batch_size for n in counts.values())
        return sum(math.ceil(n / self.batch_size) for n in counts.values())


__all__ = ['MultiTaskDataset', 'MultiTaskSampler', 'TaskBatchSampler', 'check_task_ratios']
