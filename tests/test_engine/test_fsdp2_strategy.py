"""FSDP2Strategy: 2 CPU processes (gloo) train as DDP does, and sharded checkpoints resume."""
import json
import os
import os.path as osp
import socket

import pytest
import torch
import torch.multiprocessing as mp
import torch.nn as nn
from mmengine.model import BaseModel

from mmfusion.errors import ConfigError

STEPS = 3  # before the checkpoint, and again after it


class TwoTowerToy(BaseModel):
    """Two small towers (a block list each), a frozen embedding and a head:
    (B, 6) features -> (B, 2) regression, MSE loss."""

    def __init__(self) -> None:
        super().__init__()
        self.encoders = nn.ModuleDict({
            'a': nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 16)),
            'b': nn.Sequential(nn.Linear(6, 8), nn.Tanh())})
        self.frozen = nn.Linear(6, 4)
        self.frozen.requires_grad_(False)
        self.head = nn.Linear(16 + 8 + 4, 2)

    def forward(self, x, y=None, mode='loss'):
        feats = torch.cat([self.encoders['a'](x), self.encoders['b'](x), self.frozen(x)], dim=1)
        out = self.head(feats)
        if mode == 'loss':
            return dict(loss=((out - y) ** 2).mean())
        return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _full_weights(model: nn.Module) -> dict:
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True))
    return {k: v.detach().clone() for k, v in state.items()}


def _strategy(kind: str, work_dir: str, name: str):
    from mmengine._strategy import DDPStrategy

    from mmfusion.engine.strategies import FSDP2Strategy

    env = dict(launcher='pytorch', randomness=dict(seed=0))
    if kind == 'ddp':
        return DDPStrategy(model_wrapper=dict(type='MMDistributedDataParallel', device_ids=None,
                                              broadcast_buffers=False),
                           work_dir=work_dir, experiment_name=name, env_kwargs=env)
    return FSDP2Strategy(work_dir=work_dir, experiment_name=name, env_kwargs=env)


def _train(strategy, steps, data, losses):
    import torch.distributed as dist

    model, optim = strategy.model, strategy.optim_wrapper
    for step in range(steps):
        log = model.train_step(dict(x=data['x'][step], y=data['y'][step]), optim)
        loss = log['loss'].detach().clone()
        dist.all_reduce(loss)  # the global batch's loss: mean of the ranks' halves
        losses.append(float(loss) / dist.get_world_size())


def _prepare(strategy):
    torch.manual_seed(1)  # the same initial weights on every rank and in every run
    strategy.prepare(TwoTowerToy(), optim_wrapper=dict(
        optimizer=dict(type='AdamW', lr=0.05, weight_decay=0.01)))


def _worker(rank: int, world: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    import torch.distributed as dist
    dist.init_process_group('gloo', rank=rank, world_size=world)
    torch.set_num_threads(1)
    from mmfusion.utils import register_all_modules
    register_all_modules()

    # a global batch of 8 per step; each rank trains on its half
    gen = torch.Generator().manual_seed(0)
    xs = torch.randn(2 * STEPS, 8, 6, generator=gen)
    ys = torch.randn(2 * STEPS, 8, 2, generator=gen)
    half = slice(rank * 4, rank * 4 + 4)
    data = dict(x=xs[:, half], y=ys[:, half])
    first = dict(x=data['x'][:STEPS], y=data['y'][:STEPS])
    second = dict(x=data['x'][STEPS:], y=data['y'][STEPS:])
    result = {}

    ddp = _strategy('ddp', out_dir, 'ddp')
    _prepare(ddp)
    ddp_losses = []
    _train(ddp, STEPS, first, ddp_losses)
    _train(ddp, STEPS, second, ddp_losses)
    ddp_weights = {k: v.clone() for k, v in ddp.model.module.state_dict().items()}

    fsdp = _strategy('fsdp2', out_dir, 'fsdp2')
    _prepare(fsdp)
    result['sharded_units'] = fsdp.sharded_units
    result['shard_numel'] = fsdp.model.head.weight.to_local().numel()
    fsdp_losses = []
    _train(fsdp, STEPS, first, fsdp_losses)
    ckpt = osp.join(out_dir, 'epoch_1.pth')
    fsdp.save_checkpoint(ckpt, extra_ckpt=dict(meta=dict(epoch=1, iter=STEPS)))
    _train(fsdp, STEPS, second, fsdp_losses)
    fsdp_weights = _full_weights(fsdp.model)

    resumed = _strategy('fsdp2', out_dir, 'resumed')
    _prepare(resumed)
    checkpoint = resumed.resume(ckpt)
    resumed_losses = []
    _train(resumed, STEPS, second, resumed_losses)
    resumed_weights = _full_weights(resumed.model)

    if rank == 0:
        result.update(
            meta_iter=checkpoint['meta']['iter'],
            files=sorted(os.listdir(ckpt)),
            ddp_losses=ddp_losses, fsdp_losses=fsdp_losses, resumed_losses=resumed_losses,
            max_weight_diff=max(float((ddp_weights[k] - fsdp_weights[k]).abs().max())
                                for k in ddp_weights),
            max_resume_diff=max(float((fsdp_weights[k] - resumed_weights[k]).abs().max())
                                for k in fsdp_weights),
            keys_equal=sorted(ddp_weights) == sorted(fsdp_weights),
            changed=float((ddp_weights['head.weight'] - _initial_head()).abs().max()),
        )
        with open(osp.join(out_dir, 'result.json'), 'w') as f:
            json.dump(result, f)
    dist.barrier()
    dist.destroy_process_group()


def _initial_head() -> torch.Tensor:
    torch.manual_seed(1)
    return TwoTowerToy().head.weight.detach()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_fsdp2_matches_ddp_and_resumes_from_sharded_checkpoint(tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    with open(tmp_path / 'result.json') as f:
        r = json.load(f)
    # every tower and the head are their own FSDP unit; each rank holds half the head
    assert r['sharded_units'] == ['encoders.a', 'encoders.b', 'head']
    assert r['shard_numel'] == 28  # head.weight (2, 28) sharded on dim 0 over 2 ranks
    assert r['changed'] > 1e-3  # training moved the weights
    assert r['keys_equal']
    # the same global-batch loss at every step, and the same weights at the end
    assert len(r['fsdp_losses']) == 2 * STEPS
    for a, b in zip(r['ddp_losses'], r['fsdp_losses']):
        assert abs(a - b) < 1e-5
    assert r['max_weight_diff'] < 1e-5
    # the sharded checkpoint: a folder of DCP shards plus the extra state; resuming
    # from it continues exactly as the uninterrupted run
    assert 'extra_state.pth' in r['files'] and '.metadata' in r['files']
    assert r['meta_iter'] == STEPS
    for a, b in zip(r['fsdp_losses'][STEPS:], r['resumed_losses']):
        assert abs(a - b) < 1e-6
    assert r['max_resume_diff'] < 1e-6


def test_fsdp2_refuses_a_model_without_parameters_to_shard(tmp_path):
    from mmfusion.engine.strategies import FSDP2Strategy

    strategy = FSDP2Strategy(work_dir=str(tmp_path), env_kwargs=dict(launcher='none'))
    with pytest.raises(ConfigError, match='no parameters to shard'):
        strategy._wrap_model(nn.Sequential(nn.ReLU(), nn.Identity()))
    with pytest.raises(ConfigError, match='every parameter of Linear is frozen'):
        strategy._wrap_model(nn.Linear(3, 3).requires_grad_(False))


def test_fsdp2_without_a_process_group_names_the_launch(tmp_path):
    from mmfusion.engine.strategies import FSDP2Strategy

    strategy = FSDP2Strategy(work_dir=str(tmp_path), env_kwargs=dict(launcher='none'))
    with pytest.raises(ConfigError, match='distributed launch.*dist_train.sh'):
        strategy._wrap_model(nn.Linear(2, 2))


def test_fsdp2_refuses_an_unknown_state_dict_type(tmp_path):
    from mmfusion.engine.strategies import FSDP2Strategy

    with pytest.raises(ConfigError, match="state_dict_type must be 'sharded' or 'full'"):
        FSDP2Strategy(work_dir=str(tmp_path), env_kwargs=dict(launcher='none'),
                      state_dict_type='zip')
