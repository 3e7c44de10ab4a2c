"""Crash safety through the real tools: SIGKILL mid-epoch and mid-checkpoint-write,
then ``--resume``; a NaN loss stops training with the last checkpoint intact;
a dead rank ends a 2-process CPU run instead of hanging it."""
import os
import os.path as osp
import signal
import subprocess
import time

import pytest
import torch
from conftest import PYTHON, REPO_ROOT, run_tool, small_cfg
from mmengine.config import Config

from mmfusion.engine import load_checkpoint_file

CONFIG = 'configs/vqa/mmshapes_vqa.py'
TESTS_DIR = osp.join(REPO_ROOT, 'tests')
ITERS_PER_EPOCH = 12  # 192 small-MMShapes training questions / batch 16


def faulty_cfg(mmshapes_root: str, work_dir: str, max_epochs: int, **extra) -> str:
    """The small VQA config with the fault-injection hook and one checkpoint kept."""
    path = small_cfg(CONFIG, mmshapes_root, work_dir, max_epochs=max_epochs)
    cfg = Config.fromfile(path)
    cfg.custom_imports = dict(imports=['fault_injection'], allow_failed_imports=False)
    cfg.custom_hooks = list(cfg.custom_hooks) + [dict(type='FaultInjectionHook')]
    # one kept checkpoint: the case where MMEngine's own hook deletes the old
    # file before the new one is written
    cfg.default_hooks.checkpoint.max_keep_ckpts = 1
    cfg.default_hooks.checkpoint.save_best = None
    cfg.merge_from_dict(extra)
    cfg.dump(path)
    return path


def fault_env(fault: str, marker: str) -> dict:
    return dict(os.environ, PYTHONUNBUFFERED='1', CUDA_VISIBLE_DEVICES='',
                PYTHONPATH=os.pathsep.join([TESTS_DIR, os.environ.get('PYTHONPATH', '')]),
                MMFUSION_FAULT=fault, MMFUSION_FAULT_MARKER=marker)


def kill_at_fault(args: list, fault: str, marker: str, timeout: float = 300) -> None:
    """Start the tool, wait for the fault point, SIGKILL the whole process group."""
    proc = subprocess.Popen(args, cwd=REPO_ROOT, env=fault_env(fault, marker),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    deadline = time.time() + timeout
    while not osp.exists(marker):
        if proc.poll() is not None:
            raise AssertionError(f'ended before the fault point:\n{proc.stdout.read()[-4000:]}')
        if time.time() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            raise AssertionError('fault point not reached in time')
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL


def float_state(path: str) -> dict:
    state = load_checkpoint_file(path, map_location='cpu')['state_dict']
    return {k: v for k, v in state.items() if torch.is_tensor(v) and v.is_floating_point()}


def assert_same_weights(a: str, b: str) -> None:
    sa, sb = float_state(a), float_state(b)
    assert sa.keys() == sb.keys()
    for key in sa:
        torch.testing.assert_close(sa[key], sb[key], rtol=1e-5, atol=1e-6,
                                   msg=lambda m: f'{key}: {m}')


@pytest.fixture(scope='module')
def uninterrupted(mmshapes_root, tmp_path_factory) -> str:
    """A 2-epoch run with the same config and no fault: the reference result."""
    work_dir = str(tmp_path_factory.mktemp('uninterrupted'))
    cfg = faulty_cfg(mmshapes_root, work_dir, max_epochs=2)
    run_tool([PYTHON, 'tools/train.py', cfg, '--work-dir', work_dir],
             env=dict(PYTHONPATH=TESTS_DIR))
    return osp.join(work_dir, 'epoch_2.pth')


def test_sigkill_while_writing_a_checkpoint_then_resume(mmshapes_root, tmp_path, uninterrupted):
    work_dir = str(tmp_path / 'run')
    cfg = faulty_cfg(mmshapes_root, work_dir, max_epochs=2)
    kill_at_fault([PYTHON, 'tools/train.py', cfg, '--work-dir', work_dir],
                  'pause_save:epoch_2.pth', str(tmp_path / 'marker'))

    # killed with half of epoch_2.pth written: the previous checkpoint and the
    # pointer to it are intact, the partial file never took the real name
    assert not osp.exists(osp.join(work_dir, 'epoch_2.pth'))
    leftovers = [f for f in os.listdir(work_dir) if f.endswith('.tmp')]
    assert len(leftovers) == 1 and leftovers[0].startswith('.epoch_2.pth.')
    last = open(osp.join(work_dir, 'last_checkpoint')).read().strip()
    assert osp.basename(last) == 'epoch_1.pth'
    assert load_checkpoint_file(last)['meta']['epoch'] == 1

    run_tool([PYTHON, 'tools/train.py', cfg, '--work-dir', work_dir, '--resume'],
             env=dict(PYTHONPATH=TESTS_DIR))
    assert_same_weights(osp.join(work_dir, 'epoch_2.pth'), uninterrupted)
    assert not [f for f in os.listdir(work_dir) if f.endswith('.tmp')]  # cleaned up
    # with max_keep_ckpts=1 the old checkpoint goes only after the new one is complete
    assert not osp.exists(osp.join(work_dir, 'epoch_1.pth'))


def test_sigkill_mid_epoch_then_resume(mmshapes_root, tmp_path, uninterrupted):
    work_dir = str(tmp_path / 'run')
    cfg = faulty_cfg(mmshapes_root, work_dir, max_epochs=2)
    kill_at_fault([PYTHON, 'tools/train.py', cfg, '--work-dir', work_dir],
                  f'pause_iter:{ITERS_PER_EPOCH + 5}', str(tmp_path / 'marker'))
    assert osp.exists(osp.join(work_dir, 'epoch_1.pth'))
    assert not osp.exists(osp.join(work_dir, 'epoch_2.pth'))

    run_tool([PYTHON, 'tools/train.py', cfg, '--work-dir', work_dir, '--resume'],
             env=dict(PYTHONPATH=TESTS_DIR))
    assert_same_weights(osp.join(work_dir, 'epoch_2.pth'), uninterrupted)


def test_nan_loss_stops_training_and_keeps_the_last_checkpoint(mmshapes_root, tmp_path):
    work_dir = str(tmp_path / 'run')
    cfg = faulty_cfg(mmshapes_root, work_dir, max_epochs=2)
    nan_iter = ITERS_PER_EPOCH + 3
    proc = subprocess.run([PYTHON, 'tools/train.py', cfg, '--work-dir', work_dir],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
                          env=fault_env(f'nan_loss:{nan_iter}', str(tmp_path / 'marker')))
    assert proc.returncode != 0
    assert f'non-finite loss at training iteration {nan_iter}: loss=nan' in proc.stderr
    assert not osp.exists(osp.join(work_dir, 'epoch_2.pth'))
    state = float_state(osp.join(work_dir, 'epoch_1.pth'))
    assert all(torch.isfinite(v).all() for v in state.values())


def test_nan_loss_skip_policy_trains_on(mmshapes_root, tmp_path):
    work_dir = str(tmp_path / 'run')
    cfg = faulty_cfg(mmshapes_root, work_dir, max_epochs=2,
                     model=dict(on_nonfinite_loss='skip'))
    nan_iter = ITERS_PER_EPOCH + 3
    proc = subprocess.run([PYTHON, 'tools/train.py', cfg, '--work-dir', work_dir],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
                          env=fault_env(f'nan_loss:{nan_iter}', str(tmp_path / 'marker')))
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    assert f'non-finite loss at training iteration {nan_iter}' in log
    assert 'skipped this step' in log and log.count('skipped this step') == 1
    state = float_state(osp.join(work_dir, 'epoch_2.pth'))
    assert all(torch.isfinite(v).all() for v in state.values())


def test_a_dead_rank_ends_the_run_in_bounded_time(mmshapes_root, tmp_path):
    """Rank 1 is SIGKILLed mid-epoch; torchrun stops rank 0 and exits non-zero."""
    work_dir = str(tmp_path / 'dist')
    cfg = faulty_cfg(mmshapes_root, work_dir, max_epochs=2)
    start = time.time()
    proc = subprocess.run(['bash', 'tools/dist_train.sh', cfg, '2', '--work-dir', work_dir],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
                          env=fault_env('kill_rank:1:3', str(tmp_path / 'marker')))
    elapsed = time.time() - start
    assert osp.exists(tmp_path / 'marker'), proc.stderr[-3000:]  # the fault happened
    assert proc.returncode != 0
    assert 'Signal 9 (SIGKILL)' in proc.stderr or 'SIGKILL' in proc.stderr
    # far below the collective timeout (30 min): torchrun notices the dead
    # worker and stops the other one
    assert elapsed < 120, f'took {elapsed:.0f} s'


def test_without_torchrun_the_surviving_rank_reports_the_lost_rank(mmshapes_root, tmp_path):
    """Ranks started by hand (as srun does): rank 1 dies, rank 0 fails its next
    collective at once and says that another rank was lost, without a traceback."""
    import socket

    work_dir = str(tmp_path / 'dist')
    cfg = faulty_cfg(mmshapes_root, work_dir, max_epochs=2)
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    marker = str(tmp_path / 'marker')
    procs = []
    for rank in (0, 1):
        env = dict(fault_env('kill_rank:1:3', marker), RANK=str(rank), LOCAL_RANK=str(rank),
                   WORLD_SIZE='2', MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
        procs.append(subprocess.Popen(
            [PYTHON, 'tools/train.py', cfg, '--launcher', 'pytorch', '--work-dir', work_dir],
            cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    try:
        out, err = procs[0].communicate(timeout=300)
        procs[1].wait(timeout=60)
    finally:
        for p in procs:
            p.kill()
    assert osp.exists(marker)
    assert procs[1].returncode == -signal.SIGKILL
    assert procs[0].returncode == 1, err[-3000:]
    assert 'mmfusion: error: rank 0 of 2 lost contact with another rank' in err
    assert '--resume' in err and 'Traceback' not in err
    # it failed fast: rank 0 stopped within seconds of rank 1's death
    assert time.time() - os.path.getmtime(marker) < 60
