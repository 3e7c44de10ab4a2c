"""tools/train.py with a ``strategy``: MMEngine's FlexibleRunner, FSDP2 and the optional extras."""
import os
import os.path as osp
import re
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
                                          r"package 'deepspeed'.*pip install "
                                          r"\"mmfusion\[deepspeed\]\".*deepspeed<0\.19\.7"):
        prepare_strategy(cfg_with(dict(type='DeepSpeedStrategy')))


def test_deepspeed_takes_the_configs_optim_wrapper_and_batch_size():
    from mmfusion.utils.launch import _prepare_deepspeed

    cfg = Config(dict(strategy=dict(type='DeepSpeedStrategy'),
                      train_dataloader=dict(batch_size=24),
                      optim_wrapper=dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3),
                                         clip_grad=dict(max_norm=5.0), accumulative_counts=4,
                                         paramwise_cfg=dict(norm_decay_mult=0.0))))
    _prepare_deepspeed(cfg)
    assert cfg.optim_wrapper.type == 'DeepSpeedOptimWrapper'
    assert 'clip_grad' not in cfg.optim_wrapper and 'accumulative_counts' not in cfg.optim_wrapper
    assert cfg.optim_wrapper.paramwise_cfg == dict(norm_decay_mult=0.0)  # the constructor's, kept
    assert cfg.strategy.gradient_clipping == 5.0
    assert cfg.strategy.gradient_accumulation_steps == 4
    assert cfg.strategy.train_micro_batch_size_per_gpu == 24
    # the strategy's own values win
    cfg = Config(dict(strategy=dict(type='DeepSpeedStrategy', gradient_clipping=1.0),
                      optim_wrapper=dict(optimizer=dict(type='SGD'), clip_grad=dict(max_norm=5.0))))
    _prepare_deepspeed(cfg)
    assert cfg.strategy.gradient_clipping == 1.0
    assert cfg.strategy.train_micro_batch_size_per_gpu == 1
    with pytest.raises(ConfigError, match=r"optim_wrapper.type='AmpOptimWrapper' cannot be used; "
                                          r"DeepSpeed does mixed precision itself.*strategy.bf16"):
        _prepare_deepspeed(Config(dict(strategy=dict(type='DeepSpeedStrategy'),
                                       optim_wrapper=dict(type='AmpOptimWrapper'))))
    with pytest.raises(ConfigError, match=r"optim_wrapper.clip_grad=.*DeepSpeed clips the 2-norm"):
        _prepare_deepspeed(Config(dict(strategy=dict(type='DeepSpeedStrategy'), optim_wrapper=dict(
            type='OptimWrapper', clip_grad=dict(max_norm=1.0, norm_type=1)))))


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
                                          r"strategy \(mmfusion: \['DeepSpeedStrategy', "
                                          r"'FSDP2Strategy'\]"):
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


def _logged_losses(out: str) -> list:
    return [float(m) for m in re.findall(r'Epoch\(train\) +\[\d+\]\[\d+/\d+\].*?loss: ([0-9.]+)',
                                         out)]


@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_train_py_deepspeed_zero2_matches_ddp_and_resumes(mmshapes_root, tmp_path):
    """``torchrun --nproc_per_node 2 tools/train.py`` with ``DeepSpeedStrategy``
    (ZeRO stage 2, gloo on CPU) and the config's usual optimizer wrapper trains
    the same model as ``DDPStrategy``: the same losses at every step and the
    same weights after 2 epochs, also when the second epoch is resumed from
    DeepSpeed's checkpoint folder of the first."""
    pytest.importorskip('deepspeed')
    import torch

    env = dict(OMP_NUM_THREADS='1', PYTHONPATH=REPO_ROOT + os.pathsep
               + os.environ.get('PYTHONPATH', ''))

    def launch(work, strategy, max_epochs, *args):
        cfg = small_cfg('configs/classification/mmshapes_itm.py', mmshapes_root, work,
                        max_epochs=max_epochs, extra=dict(strategy=strategy))
        cmd = [PYTHON, '-m', 'torch.distributed.run', '--nproc_per_node', '2',
               '--master_port', str(_free_port()), osp.join(REPO_ROOT, 'tools/train.py'), cfg,
               '--work-dir', work, '--launcher', 'pytorch', *args]
        proc = run_tool(cmd, env=env, timeout=1100)
        return proc.stdout + proc.stderr

    ddp_work, ds_work = str(tmp_path / 'ddp'), str(tmp_path / 'ds')
    ddp_losses = _logged_losses(launch(ddp_work, dict(type='DDPStrategy'), 2))
    zero2 = dict(type='DeepSpeedStrategy', zero_optimization=dict(stage=2))
    first = launch(ds_work, zero2, 1)
    assert osp.isfile(osp.join(ds_work, 'epoch_1.pth', 'mp_rank_00_model_states.pt'))
    assert sorted(n for n in os.listdir(osp.join(ds_work, 'epoch_1.pth')) if 'optim' in n) == [
        'zero_pp_rank_0_mp_rank_00_optim_states.pt', 'zero_pp_rank_1_mp_rank_00_optim_states.pt']
    second = launch(ds_work, zero2, 2, '--resume')
    # the checkpoint hooks run under DeepSpeed: epoch_1 says epoch 1
    assert 'resumed epoch: 1, iter: 3' in second, second[-3000:]
    assert 'Epoch(train) [1]' not in second
    ds_losses = _logged_losses(first) + _logged_losses(second)
    assert len(ddp_losses) == len(ds_losses) == 6
    assert ds_losses == pytest.approx(ddp_losses, abs=2e-4)  # as logged, 4 decimals

    ddp_weights = torch.load(osp.join(ddp_work, 'epoch_2.pth'), map_location='cpu',
                             weights_only=False)['state_dict']
    # MMEngine's DDPStrategy saves the wrapper's keys
    ddp_weights = {k.removeprefix('module.'): v for k, v in ddp_weights.items()}
    # DeepSpeed's own file format (pickled); the test wrote it
    ds_weights = torch.load(osp.join(ds_work, 'epoch_2.pth', 'mp_rank_00_model_states.pt'),
                            map_location='cpu', weights_only=False)['module']
    params = [k for k, v in ddp_weights.items() if v.is_floating_point()]
    assert params and all(k in ds_weights for k in params)
    diff = max(float((ds_weights[k] - ddp_weights[k]).abs().max()) for k in params)
    print(f'\nDeepSpeed ZeRO-2 (train + resume) vs DDP, 2 gloo ranks: '
          f'max |weight diff| = {diff:.2e}')
    assert diff < 1e-5
