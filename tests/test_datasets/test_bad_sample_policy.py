"""The corrupt-sample policy (on_bad_sample) of mmfusion's datasets, and its report hook."""
import glob
import json
import logging
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.model import BaseModel
from mmengine.runner import Runner

from mmfusion.datasets import ListClsDataset, VQAv2Dataset
from mmfusion.errors import ConfigError, DataError, ImageFileNotFoundError, ImageLoadError
from mmfusion.registry import MODELS
from mmfusion.utils import register_all_modules

register_all_modules()

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
PIPELINE = [dict(type='LoadImageFromFile'), dict(type='PackMultiModalInputs')]


def make_list(root, num: int, corrupt=(), missing=()) -> str:
    """``num`` 8x8 PNGs (pixel value = index) listed in ``train.jsonl``; the
    ``corrupt`` ones hold bytes that are no image, the ``missing`` ones do not exist."""
    (root / 'images').mkdir(exist_ok=True)
    rows = []
    for i in range(num):
        path = root / 'images' / f'{i}.png'
        if i in corrupt:
            path.write_bytes(b'\x89PNG but not really')
        elif i not in missing:
            assert cv2.imwrite(str(path), np.full((8, 8, 3), i, np.uint8))
        rows.append(dict(img_path=f'images/{i}.png', label=i % 2))
    (root / 'train.jsonl').write_text('\n'.join(json.dumps(r) for r in rows) + '\n')
    return str(root / 'train.jsonl')


def build(root, **kwargs) -> ListClsDataset:
    kwargs.setdefault('pipeline', PIPELINE)
    return ListClsDataset('train.jsonl', data_root=str(root), classes=['a', 'b'],
                                **kwargs)


@pytest.fixture
def warnings_logged():
    """The warnings mmengine's current logger emits during the test."""
    messages = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: messages.append(record.getMessage())
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    yield messages
    logger.removeHandler(handler)


def pixel(item) -> int:
    """Which image a fetched item holds (each image is filled with its index)."""
    return int(item['inputs']['image'][0, 0, 0])


def test_raise_names_the_dataset_sample_list_file_and_image(tmp_path):
    ann = make_list(tmp_path, 5, corrupt={3})
    ds = build(tmp_path)
    assert pixel(ds[2]) == 2
    with pytest.raises(ImageLoadError) as info:
        ds[3]
    bad_image = str(tmp_path / 'images' / '3.png')
    assert str(info.value).startswith(f'ListClsDataset sample 3 ({ann}): cannot decode '
                                      f'{bad_image} as an image')
    assert isinstance(info.value.__cause__, ImageLoadError)  # the transform's own error


def test_missing_image_keeps_its_file_not_found_type(tmp_path):
    make_list(tmp_path, 3, missing={1})
    ds = build(tmp_path, check_files=False)  # with the check, loading the list would fail
    with pytest.raises(ImageFileNotFoundError) as info:
        ds[1]
    assert isinstance(info.value, FileNotFoundError)
    assert 'sample 1 ' in str(info.value)
    assert str(tmp_path / 'images' / '1.png') in str(info.value)


def test_skip_returns_another_sample_and_counts_it(tmp_path, warnings_logged):
    make_list(tmp_path, 5, corrupt={3})
    ds = build(tmp_path, on_bad_sample='skip')
    item = ds[3]
    assert pixel(item) != 3
    assert item['data_samples'].metainfo['bad_samples_skipped'] == 1
    assert len(warnings_logged) == 1
    assert 'ListClsDataset sample 3 ' in warnings_logged[0]
    assert f'using sample {pixel(item)} instead' in warnings_logged[0]
    assert 'cannot decode' in warnings_logged[0]
    again = ds[3]
    assert pixel(again) == pixel(item)  # the replacement is deterministic
    assert again['data_samples'].metainfo['bad_samples_skipped'] == 1  # counted each time
    assert len(warnings_logged) == 1  # but warned about once
    good = ds[4]
    assert pixel(good) == 4 and 'bad_samples_skipped' not in good['data_samples'].metainfo


def test_skip_counts_every_bad_sample_on_the_way(tmp_path):
    make_list(tmp_path, 4, corrupt={0, 1, 2})
    ds = build(tmp_path, on_bad_sample='skip')
    for i in range(3):
        item = ds[i]
        assert pixel(item) == 3  # the only good sample
        assert item['data_samples'].metainfo['bad_samples_skipped'] >= 1
    # some replacements are bad too: the count covers them
    counts = [ds[i]['data_samples'].metainfo['bad_samples_skipped'] for i in range(3)]
    assert max(counts) > 1


def test_skip_gives_up_when_nothing_is_readable(tmp_path):
    make_list(tmp_path, 3, corrupt={0, 1, 2})
    ds = build(tmp_path, on_bad_sample='skip', max_refetch=4)
    with pytest.raises(DataError, match=r'no good sample after 5 attempts starting at '
                                        r'sample 1.*cannot decode'):
        ds[1]


def test_test_mode_always_raises(tmp_path):
    make_list(tmp_path, 3, corrupt={1})
    ds = build(tmp_path, on_bad_sample='skip', test_mode=True)
    with pytest.raises(ImageLoadError, match=r'sample 1 .*evaluation must see every sample'):
        ds[1]


def test_bugs_propagate_unchanged(tmp_path):
    """A non-DataError (here: a modality the packer cannot handle) is a bug, not a bad sample."""
    make_list(tmp_path, 2)
    pipeline = [dict(type='PackMultiModalInputs', inputs=dict(vector='sample_idx'))]
    ds = build(tmp_path, on_bad_sample='skip', pipeline=pipeline)
    with pytest.raises(TypeError, match=r'^cannot pack a modality of type int$'):
        ds[0]


def test_policy_value_is_checked(tmp_path):
    make_list(tmp_path, 2)
    with pytest.raises(ConfigError, match=r"on_bad_sample must be one of \['raise', 'skip'\], "
                                          r"got 'ignore'"):
        build(tmp_path, on_bad_sample='ignore')


def test_vqa_dataset_has_the_policy(tmp_path):
    (tmp_path / 'images').mkdir()
    for i in range(3):
        assert cv2.imwrite(str(tmp_path / 'images' / f'{i}.png'), np.full((4, 4, 3), i, np.uint8))
    (tmp_path / 'images' / '1.png').write_bytes(b'')
    questions = [dict(image_id=i, question='what?', question_id=10 + i) for i in range(3)]
    (tmp_path / 'q.json').write_text(json.dumps(dict(questions=questions)))
    kwargs = dict(data_root=str(tmp_path), question_file='q.json',
                  data_prefix=dict(img_path='images'), img_file_template='{image_id}.png',
                  pipeline=[dict(type='LoadImageFromFile'),
                            dict(type='PackMultiModalInputs', inputs=dict(image='img'))])
    with pytest.raises(ImageLoadError, match=r'^VQAv2Dataset sample 1 \(.*q\.json\): image '
                                             r'file is empty: .*1\.png'):
        VQAv2Dataset(**kwargs)[1]
    item = VQAv2Dataset(on_bad_sample='skip', **kwargs)[1]
    assert item['data_samples'].metainfo['bad_samples_skipped'] == 1
    assert item['data_samples'].question_id in (10, 12)


@MODELS.register_module(force=True)
class TinyImageClassifier(BaseModel):
    """The mean pixel of each image -> 2 logits: just enough to train."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(1, 2)

    def forward(self, inputs, data_samples=None, mode='loss'):
        x = torch.stack([img.float().mean() / 255 for img in inputs['image']])[:, None]
        labels = torch.cat([s.gt_label for s in data_samples])
        return dict(loss=torch.nn.functional.cross_entropy(self.fc(x), labels))


def test_hook_reports_the_epoch_count_from_worker_processes(tmp_path):
    data = tmp_path / 'data'
    data.mkdir()
    make_list(data, 8, corrupt={2, 5})
    ds = build(data, on_bad_sample='skip')
    # what the dataset itself counts for one pass (replacements may be bad too)
    per_epoch = sum(ds[i]['data_samples'].metainfo.get('bad_samples_skipped', 0)
                    for i in range(len(ds)))
    assert per_epoch >= 2
    runtime = Config.fromfile(osp.join(REPO_ROOT, 'configs/_base_/default_runtime.py'))
    runner = Runner(
        model=dict(type='TinyImageClassifier'), work_dir=str(tmp_path / 'work'),
        train_dataloader=dict(dataset=ds, batch_size=3, num_workers=1,
                              sampler=dict(type='DefaultSampler', shuffle=False),
                              collate_fn=dict(type='pseudo_collate')),
        train_cfg=dict(by_epoch=True, max_epochs=2),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        default_hooks=dict(bad_samples=runtime.default_hooks.bad_samples, checkpoint=None),
        default_scope='mmfusion')
    runner.train()
    assert runner.message_hub.get_info('train/bad_samples_skipped') == per_epoch
    assert runner.message_hub.get_info('train/bad_samples_skipped_total') == 2 * per_epoch
    log = ''.join(open(p).read() for p in glob.glob(str(tmp_path / 'work' / '*' / '*.log')))
    for epoch in (1, 2):
        assert f'epoch {epoch}: skipped {per_epoch} bad training samples' in log
