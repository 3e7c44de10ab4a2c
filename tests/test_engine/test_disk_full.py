"""A checkpoint write that fails for lack of space stops training with one clear
line and leaves the previous checkpoint and ``last_checkpoint`` valid; ``--resume``
then finishes with the weights of an uninterrupted run.

The disk limit is real: the training process runs under ``RLIMIT_FSIZE``
(with SIGXFSZ ignored, a write past the limit fails with ``EFBIG``, as one past
a full disk fails with ``ENOSPC``), chosen so that ``epoch_1.pth`` fits and
``epoch_2.pth`` (a little larger: its message hub holds one more epoch of
logged values) does not.
"""
import errno
import os
import os.path as osp
import resource
import signal
import subprocess

import pytest
import torch
from conftest import PYTHON, REPO_ROOT, run_tool, small_cfg

from mmfusion.engine import atomic_write, load_checkpoint_file
from mmfusion.errors import CheckpointWriteError

CONFIG = 'configs/vqa/mmshapes_vqa.py'
# the best checkpoint is written after validation and would be the first file
# over the limit; without it the checkpoints are epoch_1.pth and epoch_2.pth
# (and a third of the questions, to keep the three runs short)
NO_BEST = ['--cfg-options', 'default_hooks.checkpoint.save_best=None',
           'train_dataloader.dataset.indices=64', 'val_dataloader.dataset.indices=16']


def limit_file_size(max_bytes: int):
    """A ``preexec_fn``: files the child writes may not grow past ``max_bytes``."""
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail the write, not the process
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))
    return apply


def tensors(path: str) -> dict:
    state = load_checkpoint_file(path, map_location='cpu')['state_dict']
    return {k: v for k, v in state.items() if torch.is_tensor(v)}


def test_atomic_write_past_the_limit_leaves_the_old_file(tmp_path):
    """In a child process: the failed write raises CheckpointWriteError (an
    OSError with errno EFBIG), keeps the old file and leaves no temporary file."""
    target = tmp_path / 'ckpt.pth'
    target.write_bytes(b'old')
    code = ('import errno, sys\n'
            'from mmfusion.engine import atomic_write\n'
            'from mmfusion.errors import CheckpointWriteError\n'
            'try:\n'
            f'    atomic_write({str(target)!r}, b"x" * 100000)\n'
            'except CheckpointWriteError as e:\n'
            '    assert e.errno == errno.EFBIG, e.errno\n'
            '    print(e)\n'
            '    sys.exit(3)\n')
    proc = subprocess.run([PYTHON, '-c', code], capture_output=True, text=True, timeout=120,
                          preexec_fn=limit_file_size(50000))
    assert proc.returncode == 3, proc.stderr
    assert f'cannot write {target} (97.7 KiB): File too large' in proc.stdout
    assert 'free on its disk' in proc.stdout
    assert target.read_bytes() == b'old'
    assert os.listdir(tmp_path) == ['ckpt.pth']


def test_write_error_is_an_oserror_with_the_errno(tmp_path):
    # a folder where the file should be: os.replace fails, nothing is left over
    (tmp_path / 'ckpt.pth').mkdir()
    with pytest.raises(CheckpointWriteError) as info:
        atomic_write(tmp_path / 'ckpt.pth', b'data')
    assert isinstance(info.value, OSError) and info.value.errno == errno.EISDIR
    assert os.listdir(tmp_path) == ['ckpt.pth']


def test_full_disk_stops_training_then_resume_finishes_exactly(mmshapes_root, tmp_path_factory):
    # same-length work dirs: the config text in each checkpoint's meta has the same size
    ref_dir = str(tmp_path_factory.mktemp('ref'))
    run_dir = str(tmp_path_factory.mktemp('run'))
    cfg = small_cfg(CONFIG, mmshapes_root, str(tmp_path_factory.mktemp('cfg')), max_epochs=2)

    run_tool([PYTHON, 'tools/train.py', cfg, '--work-dir', ref_dir] + NO_BEST)
    size_1 = osp.getsize(osp.join(ref_dir, 'epoch_1.pth'))
    size_2 = osp.getsize(osp.join(ref_dir, 'epoch_2.pth'))
    assert size_2 - size_1 >= 256, (size_1, size_2)  # room for a limit between them

    proc = subprocess.run([PYTHON, 'tools/train.py', cfg, '--work-dir', run_dir] + NO_BEST,
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, CUDA_VISIBLE_DEVICES=''),
                          preexec_fn=limit_file_size((size_1 + size_2) // 2))
    assert proc.returncode == 1, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith('mmfusion: error:')]
    assert len(errors) == 1 and 'Traceback' not in proc.stderr, proc.stderr[-3000:]
    assert f'cannot write {osp.join(run_dir, "epoch_2.pth")}' in errors[0]
    assert 'File too large' in errors[0] and 'free on its disk' in errors[0]
    assert '--resume' in errors[0]

    # the previous checkpoint and the pointer to it are intact; no partial file
    assert sorted(f for f in os.listdir(run_dir) if 'pth' in f) == ['epoch_1.pth']
    last = open(osp.join(run_dir, 'last_checkpoint')).read().strip()
    assert last == osp.join(run_dir, 'epoch_1.pth')
    assert load_checkpoint_file(last)['meta']['epoch'] == 1

    run_tool([PYTHON, 'tools/train.py', cfg, '--work-dir', run_dir, '--resume'] + NO_BEST)
    resumed = tensors(osp.join(run_dir, 'epoch_2.pth'))
    reference = tensors(osp.join(ref_dir, 'epoch_2.pth'))
    assert resumed.keys() == reference.keys()
    for key, value in reference.items():
        assert torch.equal(resumed[key], value), key
