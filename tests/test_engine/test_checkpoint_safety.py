"""Checkpoints never run code on load, and are written atomically."""
import os
import os.path as osp
import subprocess
from collections import OrderedDict

import pytest
import torch
from conftest import PYTHON, REPO_ROOT, run_tool, small_cfg
from mmengine.logging import HistoryBuffer

from mmfusion.engine import atomic_write, load_checkpoint_file
from mmfusion.errors import CheckpointError, UnsafeCheckpointError

CONFIG = 'configs/classification/mmshapes_itm.py'


class CreatesAFile:
    """Unpickling this calls ``open(path, 'w')``: the file appears on disk."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, 'w'))


def malicious_checkpoint(path: str, marker: str) -> str:
    torch.save({'state_dict': OrderedDict(w=torch.zeros(2)), 'meta': {'epoch': 1},
                'message_hub': CreatesAFile(marker)}, path)
    return path


def test_the_payload_really_creates_a_file_when_unpickled_unsafely(tmp_path):
    """Guards the tests below: the payload is live."""
    marker = str(tmp_path / 'created')
    path = malicious_checkpoint(str(tmp_path / 'evil.pth'), marker)
    torch.load(path, weights_only=False)
    assert osp.exists(marker)


def test_loader_refuses_and_names_the_type_and_the_conversion(tmp_path):
    marker = str(tmp_path / 'created')
    path = malicious_checkpoint(str(tmp_path / 'evil.pth'), marker)
    with pytest.raises(UnsafeCheckpointError) as info:
        load_checkpoint_file(path)
    message = str(info.value)
    assert path in message and 'open' in message
    assert 'tools/misc/convert_checkpoint.py' in message and '--trusted' in message
    assert not osp.exists(marker)


def test_the_torch_env_switch_cannot_turn_the_check_off(tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '1')
    marker = str(tmp_path / 'created')
    path = malicious_checkpoint(str(tmp_path / 'evil.pth'), marker)
    with pytest.raises(UnsafeCheckpointError):
        load_checkpoint_file(path)
    assert not osp.exists(marker)


@pytest.fixture(scope='module')
def itm_cfg(mmshapes_root, tmp_path_factory) -> str:
    return small_cfg(CONFIG, mmshapes_root, str(tmp_path_factory.mktemp('itm')), max_epochs=1)


@pytest.mark.parametrize('entry', ['resume_path', 'resume_auto', 'load_from', 'test_tool'])
def test_tools_refuse_a_malicious_checkpoint_and_create_nothing(entry, itm_cfg, tmp_path):
    marker = str(tmp_path / 'created')
    work_dir = str(tmp_path / 'work')
    os.makedirs(work_dir)
    evil = malicious_checkpoint(osp.join(work_dir, 'epoch_1.pth'), marker)
    if entry == 'resume_path':
        args = ['tools/train.py', itm_cfg, '--work-dir', work_dir, '--resume', evil]
    elif entry == 'resume_auto':
        with open(osp.join(work_dir, 'last_checkpoint'), 'w') as f:
            f.write(evil)
        args = ['tools/train.py', itm_cfg, '--work-dir', work_dir, '--resume']
    elif entry == 'load_from':
        args = ['tools/train.py', itm_cfg, '--work-dir', work_dir,
                '--cfg-options', f'load_from={evil}']
    else:
        args = ['tools/test.py', itm_cfg, evil, '--work-dir', work_dir]
    proc = subprocess.run([PYTHON, *args], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=300, env=dict(os.environ, CUDA_VISIBLE_DEVICES=''))
    assert proc.returncode != 0
    assert f'refused to load checkpoint {evil}' in proc.stderr
    assert not osp.exists(marker)


def test_inference_api_refuses_a_malicious_checkpoint(itm_cfg, tmp_path):
    from mmfusion.apis import MultiModalInferencer

    marker = str(tmp_path / 'created')
    evil = malicious_checkpoint(str(tmp_path / 'evil.pth'), marker)
    with pytest.raises(UnsafeCheckpointError, match='refused to load checkpoint'):
        MultiModalInferencer(itm_cfg, evil, device='cpu')
    assert not osp.exists(marker)


def test_truncated_checkpoint_is_a_clear_error(tmp_path):
    path = str(tmp_path / 'whole.pth')
    torch.save({'state_dict': OrderedDict(w=torch.arange(1000.0))}, path)
    data = open(path, 'rb').read()
    cut = str(tmp_path / 'cut.pth')
    open(cut, 'wb').write(data[:len(data) // 2])
    with pytest.raises(CheckpointError, match='cut.pth .* not a complete PyTorch checkpoint'):
        load_checkpoint_file(cut)
    with pytest.raises(CheckpointError, match='not found'):
        load_checkpoint_file(str(tmp_path / 'absent.pth'))


def test_legacy_mmengine_checkpoint_is_refused_then_converted(tmp_path):
    """A checkpoint as MMEngine writes it (HistoryBuffer objects) needs one
    explicit, trusted conversion."""
    legacy = str(tmp_path / 'legacy.pth')
    weights = OrderedDict(w=torch.randn(3, 2), b=torch.randn(2))
    torch.save({'state_dict': weights, 'meta': {'epoch': 3},
                'message_hub': {'log_scalars': {'train/loss': HistoryBuffer([0.5, 0.25], [1, 1])}}},
               legacy)
    with pytest.raises(UnsafeCheckpointError, match='HistoryBuffer'):
        load_checkpoint_file(legacy)

    out = str(tmp_path / 'converted.pth')
    refused = subprocess.run([PYTHON, 'tools/misc/convert_checkpoint.py', legacy, out],
                             cwd=REPO_ROOT, capture_output=True, text=True)
    assert refused.returncode != 0 and '--trusted' in refused.stderr and not osp.exists(out)

    run_tool([PYTHON, 'tools/misc/convert_checkpoint.py', legacy, out, '--trusted'])
    converted = load_checkpoint_file(out)
    for key, value in weights.items():
        assert torch.equal(converted['state_dict'][key], value)
    assert converted['meta'] == {'epoch': 3}
    assert converted['message_hub']['log_scalars']['train/loss']['log_history'] == [0.5, 0.25]


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    path = str(tmp_path / 'epoch_1.pth')
    atomic_write(path, b'old contents')

    class Unwritable:  # makes the write fail, as a full disk would
        def __len__(self):
            return 10

    with pytest.raises(TypeError):
        atomic_write(path, Unwritable())
    assert open(path, 'rb').read() == b'old contents'
    assert os.listdir(tmp_path) == ['epoch_1.pth']  # no temporary file left

    atomic_write(path, 'new contents')
    assert open(path, encoding='utf-8').read() == 'new contents'
    assert os.listdir(tmp_path) == ['epoch_1.pth']


def test_mmengine_writes_through_the_atomic_backend(tmp_path):
    from mmengine.fileio import get_file_backend
    from mmengine.runner.checkpoint import save_checkpoint

    from mmfusion.engine import AtomicLocalBackend

    assert isinstance(get_file_backend(str(tmp_path)), AtomicLocalBackend)
    path = str(tmp_path / 'ckpt.pth')
    save_checkpoint({'state_dict': OrderedDict(w=torch.ones(2))}, path)
    assert torch.equal(load_checkpoint_file(path)['state_dict']['w'], torch.ones(2))


def _toy_runner(runner_cls, work_dir):
    """A 2-epoch run of a linear model, validated every epoch with a metric
    that improves each time, so the best checkpoint is written every epoch."""
    from mmengine.evaluator import BaseMetric
    from mmengine.model import BaseModel

    class Linear(BaseModel):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(2, 1)

        def forward(self, inputs, labels=None, mode='tensor'):
            out = self.fc(inputs)  # default_collate stacked them
            if mode == 'loss':
                return dict(loss=((out.squeeze(1) - labels) ** 2).mean())
            return [dict(out=o) for o in out]

    class Improving(BaseMetric):
        calls = 0

        def process(self, data_batch, data_samples):
            self.results.append(0)

        def compute_metrics(self, results):
            Improving.calls += 1
            return dict(score=float(Improving.calls))

    data = [dict(inputs=torch.randn(2), labels=torch.randn(())) for _ in range(8)]
    loader = dict(dataset=data, batch_size=4, sampler=dict(type='DefaultSampler', shuffle=False),
                  collate_fn=dict(type='default_collate'))
    return runner_cls(
        model=Linear(), work_dir=work_dir, train_dataloader=loader, val_dataloader=loader,
        val_evaluator=[Improving()], optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        train_cfg=dict(by_epoch=True, max_epochs=2), val_cfg=dict(),
        default_hooks=dict(checkpoint=dict(type='mmfusion.CheckpointHook', interval=1,
                                           save_best='score', rule='greater')),
        custom_hooks=[dict(type='mmfusion.PlainCheckpointHook')],
        default_scope='mmfusion')


@pytest.mark.parametrize('runner_name', ['Runner', 'FlexibleRunner'])
def test_checkpoint_meta_names_its_own_epoch_after_a_new_best(runner_name, tmp_path):
    """After a new best score the latest checkpoint is written again; MMEngine's
    FlexibleRunner then stored ``epoch + 1`` (and --resume skipped an epoch)."""
    import mmengine.runner

    runner = _toy_runner(getattr(mmengine.runner, runner_name), str(tmp_path))
    runner.train()
    for epoch in (1, 2):
        meta = load_checkpoint_file(osp.join(str(tmp_path), f'epoch_{epoch}.pth'))['meta']
        assert (meta['epoch'], meta['iter']) == (epoch, 2 * epoch)
