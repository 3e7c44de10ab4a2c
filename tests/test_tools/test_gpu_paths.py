"""The GPU paths of the tools: mixed precision and nccl through torchrun.

CI machines have no GPU, so these are skipped there; run them on a machine
with one (``python -m pytest tests/test_tools/test_gpu_paths.py``).
"""
import os.path as osp

import pytest
import torch
from conftest import PYTHON, run_tool, small_cfg

CONFIG = 'configs/vqa/mmshapes_vqa.py'

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')


def test_amp_training_on_gpu(mmshapes_root, tmp_path):
    work_dir = str(tmp_path)
    cfg = small_cfg(CONFIG, mmshapes_root, work_dir, max_epochs=1)
    run_tool([PYTHON, 'tools/train.py', cfg, '--amp', '--work-dir', work_dir], gpu=True)
    ckpt = torch.load(osp.join(work_dir, 'epoch_1.pth'), weights_only=True)
    # AmpOptimWrapper stores its dynamic loss scaler next to the optimizer state
    assert 'loss_scaler' in ckpt['optimizer']
    assert all(torch.isfinite(v).all() for v in ckpt['state_dict'].values()
               if torch.is_tensor(v) and v.is_floating_point())
    # and the checkpoint evaluates
    run_tool([PYTHON, 'tools/test.py', cfg, osp.join(work_dir, 'epoch_1.pth'),
              '--work-dir', osp.join(work_dir, 'test')], gpu=True)
    assert osp.exists(osp.join(work_dir, 'test', 'metrics.json'))


def test_dist_train_uses_nccl_on_gpus(mmshapes_root, tmp_path):
    n = torch.cuda.device_count()
    work_dir = str(tmp_path)
    cfg = small_cfg(CONFIG, mmshapes_root, work_dir, max_epochs=1)
    proc = run_tool(['bash', 'tools/dist_train.sh', cfg, str(n), '--amp',
                     '--work-dir', work_dir], timeout=600, gpu=True)
    assert 'Distributed training is not used' not in proc.stdout + proc.stderr
    assert osp.exists(osp.join(work_dir, 'epoch_1.pth'))
    from mmengine.config import Config
    dumped = Config.fromfile(osp.join(work_dir, osp.basename(cfg)))
    assert dumped.env_cfg.dist_cfg.backend == 'nccl'


def test_resume_is_exact_on_gpu_in_deterministic_mode(mmshapes_root, tmp_path):
    """With randomness.deterministic=True (cuDNN and cuBLAS deterministic), a
    run resumed after epoch 1 ends with the weights of an uninterrupted run."""
    env = dict(CUBLAS_WORKSPACE_CONFIG=':4096:8')
    det = ['--cfg-options', 'randomness.deterministic=True']
    full_dir, resumed_dir = str(tmp_path / 'full'), str(tmp_path / 'resumed')
    cfg_2 = small_cfg(CONFIG, mmshapes_root, full_dir, max_epochs=2)
    cfg_1 = small_cfg(CONFIG, mmshapes_root, resumed_dir, max_epochs=1)
    run_tool([PYTHON, 'tools/train.py', cfg_2, '--work-dir', full_dir, *det], env=env, gpu=True)
    run_tool([PYTHON, 'tools/train.py', cfg_1, '--work-dir', resumed_dir, *det], env=env,
             gpu=True)
    run_tool([PYTHON, 'tools/train.py', cfg_2, '--work-dir', resumed_dir, '--resume', *det],
             env=env, gpu=True)
    full = torch.load(osp.join(full_dir, 'epoch_2.pth'), weights_only=True)['state_dict']
    resumed = torch.load(osp.join(resumed_dir, 'epoch_2.pth'), weights_only=True)['state_dict']
    for key, value in full.items():
        if torch.is_tensor(value) and value.is_floating_point():
            torch.testing.assert_close(resumed[key], value, rtol=1e-5, atol=1e-6,
                                       msg=lambda m: f'{key}: {m}')
