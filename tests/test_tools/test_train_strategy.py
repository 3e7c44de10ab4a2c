"""tools/train.py with a ``strategy``: MMEngine's FlexibleRunner, FSDP2 and the optional extras."""
import os
import os.path as osp
import socket

import pytest
from conftest import PYTHON, REPO_ROOT, run_tool, small_cfg
from mmengine.config import Config

from mmfusion.errors import ConfigError
from mmfusion.utils import prepare_strategy, register_all_modules


def cfg_with(strategy):
    return Config(dict(strategy=strategy))


def test_no_strategy_keeps_the_runner_and_its_checkpoint_check():
    assert prepare_strategy(Config(dict(model=dict()))) is True


def test_deepspeed_without_the_package_names_the_install(monkeypatch):
    import importlib.util

    if importlib.util.find_spec('deepspeed') is not None:
        pytest.skip('deepspeed is installed here')
    with pytest.raises(ConfigError, match=r"strategy=DeepSpeedStrategy needs the optional "
                                          r"package 'deepspeed'.*pip install deepspeed"):
        prepare_strategy(cfg_with(dict(type='DeepSpeedStrategy')))


def test_strategy_types_resolve_in_mmfusion_scope_and_ddp_runs_on_cpu():
    register_all_modules()
    cfg = cfg_with(dict(type='FSDP2Strategy'))
    assert prepare_strategy(cfg) is False  # sharded checkpoints: folders
    assert cfg.strategy.type == 'mmfusion.FSDP2Strategy'
    assert prepare_strategy(cfg_with(dict(type='FSDP2Strategy', state_dict_type='full')))
    ddp = cfg_with(dict(type='DDPStrategy'))
    assert prepare_strategy(ddp) is True
    import torch
    if not torch.cuda.is_available():
        assert ddp.strategy.model_wrapper['device_ids'] is None
    with pytest.raises(ConfigError, match=r"strategy.type='FDSP2Strategy' is not a registered "
                                          r"strategy \(mmfusion: \['FSDP2Strategy'\]"):
        prepare_strategy(cfg_with(dict(type='FDSP2Strategy')))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_train_py_fsdp2_two_processes_trains_and_resumes(mmshapes_root, tmp_path):
    """``torchrun --nproc_per_node 2 tools/train.py`` with FSDP2Strategy trains
    an epoch through MMEngine's FlexibleRunner, validates, writes a sharded
    checkpoint folder, and ``--resume`` continues from it to the next epoch.
    (That the resumed run continues exactly is tested at the strategy level,
    tests/test_engine/test_fsdp2_strategy.py.)"""
    work = str(tmp_path / 'work')
    extra = dict(strategy=dict(type='FSDP2Strategy'))
    env = dict(OMP_NUM_THREADS='1', PYTHONPATH=REPO_ROOT + os.pathsep
               + os.environ.get('PYTHONPATH', ''))

    def launch(max_epochs, *args):
        cfg = small_cfg('configs/classification/mmshapes_itm.py', mmshapes_root, work,
                        max_epochs=max_epochs, extra=extra)
        cmd = [PYTHON, '-m', 'torch.distributed.run', '--nproc_per_node', '2',
               '--master_port', str(_free_port()), osp.join(REPO_ROOT, 'tools/train.py'), cfg,
               '--work-dir', work, '--launcher', 'pytorch', *args]
        # two processes starting on a busy machine
        proc = run_tool(cmd, env=env, timeout=1100)
        return proc.stdout + proc.stderr

    out = launch(1)
    assert 'Epoch(val) [1]' in out
    ckpt = osp.join(work, 'epoch_1.pth')
    assert osp.isdir(ckpt) and osp.isfile(osp.join(ckpt, 'extra_state.pth'))
    assert sorted(n for n in os.listdir(ckpt) if n.endswith('.distcp')) == [
        '__0_0.distcp', '__1_0.distcp']  # one shard file per rank

    out = launch(2, '--resume')
    # the checkpoint of epoch 1 says epoch 1, also after the best checkpoint
    # re-saved it following validation (the FlexibleRunner wrote epoch + 1)
    assert 'resumed epoch: 1, iter: 3' in out, out[-3000:]
    assert 'Epoch(train) [1]' not in out  # the first epoch is not trained again
    assert 'Epoch(val) [2]' in out
    assert osp.isdir(osp.join(work, 'epoch_2.pth'))
