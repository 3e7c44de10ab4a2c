"""MultiTaskDataset, MultiTaskSampler (per-task ratios) and TaskBatchSampler."""
from collections import Counter

import pytest
import torch
from mmengine.dataset import DefaultSampler

from mmfusion.datasets import MultiTaskDataset, MultiTaskSampler, TaskBatchSampler
from mmfusion.datasets.multi_task import check_task_ratios
from mmfusion.errors import ConfigError
from mmfusion.structures import MultiModalDataSample
from mmfusion.utils import register_all_modules

register_all_modules()


class ListDataset(torch.utils.data.Dataset):
    """n in-memory samples, packed like PackMultiModalInputs output."""

    def __init__(self, n, name):
        self.n, self.name = n, name
        self.metainfo = dict(classes=(name, ))

    def __len__(self):
        return self.n

    def get_data_info(self, i):
        return dict(text=f'{self.name} {i}', gt_label=i % 2)

    def __getitem__(self, i):
        return dict(inputs=dict(x=torch.tensor([float(i)])),
                    data_samples=MultiModalDataSample(metainfo=dict(index=i)))


def mixture(sizes=(100, 30, 10)):
    return MultiTaskDataset(datasets={f't{k}': ListDataset(n, f't{k}')
                                      for k, n in enumerate(sizes)})


def test_dataset_layout_and_task_field():
    ds = mixture()
    assert len(ds) == 140 and ds.tasks == ['t0', 't1', 't2']
    assert ds.locate(0) == ('t0', 0) and ds.locate(100) == ('t1', 0) and ds.locate(139) == ('t2', 9)
    item = ds[105]
    assert item['data_samples'].task == 't1' and item['data_samples'].index == 5
    assert ds.get_data_info(130)['task'] == 't2'
    meta = ds.metainfo
    assert meta['task_sizes'] == dict(t0=100, t1=30, t2=10)
    assert meta['task_metainfo']['t1']['classes'] == ('t1', )
    with pytest.raises(IndexError):
        ds.locate(140)


def test_real_mmshapes_tasks(mmshapes_root):
    load = dict(type='LoadImageFromFile')
    ds = MultiTaskDataset(datasets=dict(
        vqa=dict(type='MMShapesVQADataset', data_root=mmshapes_root, split='val',
                 pipeline=[load, dict(type='PackMultiModalInputs',
                                      inputs=dict(image='img', question='question'))]),
        ml=dict(type='MMShapesClsDataset', task='multilabel', data_root=mmshapes_root,
                split='val', pipeline=[load, dict(type='PackMultiModalInputs',
                                                  inputs=dict(image='img'))])))
    first, last = ds[0], ds[len(ds) - 1]
    assert first['data_samples'].task == 'vqa' and set(first['inputs']) == {'image', 'question'}
    assert last['data_samples'].task == 'ml' and set(last['inputs']) == {'image'}


def test_sampler_follows_the_ratios_whatever_the_sizes():
    ds = mixture()
    ratios = dict(t0=0.2, t1=0.3, t2=0.5)
    sampler = MultiTaskSampler(ds, ratios=ratios, num_samples=4000, seed=0)
    indices = list(sampler)
    assert len(indices) == len(sampler) == 4000
    counts = Counter(ds.task_of(i) for i in indices)
    for task, r in ratios.items():
        assert abs(counts[task] / 4000 - r) < 0.03, counts
    # a small task is cycled through whole permutations: every sample 200 +- 1 times
    t2 = Counter(i for i in indices if ds.task_of(i) == 't2')
    assert max(t2.values()) - min(t2.values()) <= 1
    # reproducible within an epoch, different across epochs
    assert list(sampler) == indices
    sampler.set_epoch(1)
    assert list(sampler) != indices


def test_sampler_default_is_proportional():
    ds = mixture()
    sampler = MultiTaskSampler(ds, seed=0, num_samples=2800)
    assert sampler.ratios == pytest.approx(dict(t0=100 / 140, t1=30 / 140, t2=10 / 140))


@pytest.mark.parametrize('ratios, match', [
    (dict(t0=0.5, t1=0.3, t2=0.3), r'must sum to 1 .*= 1.1'),
    (dict(t0=0.5, t1=0.5), r"missing: \['t2'\]"),
    (dict(t0=0.5, t1=0.5, t2=0.0, t3=0.0), r"unknown: \['t3'\]"),
    (dict(t0=1.5, t1=-0.5, t2=0.0), r'ratios.t1 must be a finite number >= 0'),
    (dict(t0=0, t1=0, t2=0), 'every ratio is 0'),
    (dict(t0='a', t1=0.5, t2=0.5), 'ratios.t0 must be a finite number'),
])
def test_ratios_that_do_not_sum_sensibly(ratios, match):
    with pytest.raises(ConfigError, match=match):
        check_task_ratios(ratios, ['t0', 't1', 't2'], key='train_dataloader.sampler.ratios')
    with pytest.raises(ConfigError, match='train_dataloader.sampler.ratios'):
        MultiTaskSampler(mixture(), ratios=ratios)


def test_batches_hold_one_task_and_evaluation_sees_every_sample_once():
    ds = mixture((37, 20, 5))
    batches = list(TaskBatchSampler(DefaultSampler(ds, shuffle=False), batch_size=8))
    assert all(len({ds.task_of(i) for i in b}) == 1 for b in batches)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(62))
    assert len(TaskBatchSampler(DefaultSampler(ds, shuffle=False), 8)) == len(batches) == 5 + 3 + 1
    train = TaskBatchSampler(MultiTaskSampler(ds, ratios=dict(t0=0.5, t1=0.25, t2=0.25),
                                              num_samples=200, seed=0), 8, drop_last=True)
    batches = list(train)
    assert len(batches) == len(train) and all(len(b) == 8 for b in batches)
    assert all(len({ds.task_of(i) for i in b}) == 1 for b in batches)
    with pytest.raises(ConfigError, match='needs a MultiTaskDataset'):
        TaskBatchSampler(DefaultSampler(ListDataset(4, 'x'), shuffle=False), 2)
