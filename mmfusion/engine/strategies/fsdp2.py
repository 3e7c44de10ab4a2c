"""Fully sharded data parallel training with FSDP2 (``torch.distributed.fsdp.fully_shard``)."""
import os.path as osp
import time
from typing import Callable, List, Optional, Sequence, Union

import mmengine
import torch
import torch.distributed as dist
import torch.nn as nn
from mmengine._strategy import DDPStrategy
from mmengine.device import get_device
from mmengine.dist import is_main_process
from mmengine.model import is_model_wrapper

from mmfusion.errors import CheckpointError, ConfigError
from mmfusion.registry import STRATEGIES

# file of a sharded checkpoint folder holding what is not sharded (meta, message hub, schedulers)
EXTRA_FILE = 'extra_state.pth'


def _pop_extra_state(model_state: dict) -> dict:
    """Take the modules' ``_extra_state`` entries (vocabularies encoded as
    byte tensors) out of a model state dict. Their size depends on their
    content, while ``torch.distributed.checkpoint`` loads into tensors of the
    saved size; they are the same on every rank, so rank 0 keeps them in
    ``extra_state.pth`` instead of the shards."""
    keys = [k for k in model_state if k.endswith('_extra_state')]
    return {k: model_state.pop(k) for k in keys}


@STRATEGIES.register_module()
class FSDP2Strategy(DDPStrategy):
    """Train with FSDP2: parameters, gradients and optimizer state sharded over ranks.

    Zhao et al., "PyTorch FSDP: Experiences on Scaling Fully Sharded Data
    Parallel", VLDB 2023, in its per-parameter (DTensor) form, FSDP2. MMEngine's
    ``FSDPStrategy`` wraps FSDP1, which on current PyTorch refuses to run
    without an accelerator; FSDP2 also trains on CPU with gloo, and keeps the
    parameter names and module classes of the model (no ``FlatParameter``).

    For :class:`mmengine.runner.FlexibleRunner` (``tools/train.py`` uses it
    when the config has a ``strategy``)::

        strategy = dict(type='FSDP2Strategy')
        # or: dict(type='FSDP2Strategy', shard_modules=['encoders.image', 'encoders.text'],
        #          mixed_precision=dict(param_dtype='bfloat16', reduce_dtype='float32'))

    Args:
        shard_modules: module paths (``'encoders.text'``) or class names
            (``'BertLayer'``, ``'Block'``) that become their own FSDP unit,
            gathered one at a time; the rest of the model is the root unit.
            Default ``'auto'``: each encoder, the fusion, the head and
            every neck.
        reshard_after_forward: free the gathered parameters after the
            forward pass (ZeRO-3; less memory) or keep them for the backward
            pass (ZeRO-2; less communication).
        mixed_precision: ``dict(param_dtype=..., reduce_dtype=...)`` for
            FSDP2's ``MixedPrecisionPolicy`` (dtype names or torch dtypes).
        state_dict_type: ``'sharded'`` (default): a checkpoint is a folder
            written by ``torch.distributed.checkpoint``, every rank writing its
            own shards (resumable on another number of ranks);
            ``'full'``: rank 0 gathers the whole model into one ordinary
            ``.pth`` file, which ``tools/test.py`` loads as any other.
        **kwargs: :class:`mmengine._strategy.DDPStrategy`'s.

    A sharded checkpoint folder converts to one file (``{'model': ..., 'optimizer': ...}``)
    with ``python -m torch.distributed.checkpoint.format_utils dcp_to_torch FOLDER OUT.pth``.
    """

    def __init__(self, *, shard_modules: Union[str, Sequence[str]] = 'auto',
                 reshard_after_forward: bool = True, mixed_precision: Optional[dict] = None,
                 state_dict_type: str = 'sharded', **kwargs) -> None:
        super().__init__(**kwargs)
        if state_dict_type not in ('sharded', 'full'):
            raise ConfigError(f"strategy.state_dict_type must be 'sharded' or 'full', got "
                              f'{state_dict_type!r}')
        self.shard_modules = shard_modules
        self.reshard_after_forward = reshard_after_forward
        self.mixed_precision = mixed_precision
        self.state_dict_type = state_dict_type
        self.sharded_units: List[str] = []

    # ------------------------------------------------------------------
    # Wrapping

    def _units(self, model: nn.Module) -> List[str]:
        """Paths of the submodules that become their own FSDP unit, inner first."""
        if self.shard_modules == 'auto':
            paths = []
            for name in ('encoders', 'necks'):
                group = getattr(model, name, None)
                if isinstance(group, nn.ModuleDict):
                    paths += [f'{name}.{key}' for key in group]
            paths += [name for name in ('fusion', 'head') if isinstance(
                getattr(model, name, None), nn.Module)]
        else:
            wanted = [self.shard_modules] if isinstance(self.shard_modules, str) \
                else list(self.shard_modules)
            paths = []
            for item in wanted:
                found = [n for n, m in model.named_modules()
                         if n and (n == item or type(m).__name__ == item)]
                if not found:
                    raise ConfigError(f'strategy.shard_modules: {item!r} is neither a module path '
                                      f'nor a module class of {type(model).__name__}')
                paths += found
        # a unit with nothing to shard would only add a collective
        paths = [p for p in paths if any(True for _ in model.get_submodule(p).parameters())]
        # inner units first: fully_shard must see a child before its parent
        return sorted(dict.fromkeys(paths), key=lambda p: -p.count('.'))

    def _mp_policy(self):
        from torch.distributed.fsdp import MixedPrecisionPolicy

        if not self.mixed_precision:
            return MixedPrecisionPolicy()
        args = {}
        for key, value in self.mixed_precision.items():
            if isinstance(value, str):
                value = getattr(torch, value, None)
                if not isinstance(value, torch.dtype):
                    raise ConfigError(f'strategy.mixed_precision.{key}: not a torch dtype name')
            args[key] = value
        return MixedPrecisionPolicy(**args)

    def _wrap_model(self, model: nn.Module) -> nn.Module:
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        if is_model_wrapper(model):
            return model
        total = sum(p.numel() for p in model.parameters())
        if total == 0:
            raise ConfigError(f'strategy=FSDP2Strategy: {type(model).__name__} has no parameters '
                              'to shard; train it without a strategy (or with DDPStrategy)')
        if not any(p.requires_grad for p in model.parameters()):
            raise ConfigError(f'strategy=FSDP2Strategy: every parameter of '
                              f'{type(model).__name__} is frozen, so there is nothing to train '
                              'or shard; unfreeze a part (model.encoders.<name>.freeze / peft)')
        if not (dist.is_available() and dist.is_initialized()):
            raise ConfigError('strategy=FSDP2Strategy shards the model over processes and needs '
                              'a distributed launch: bash tools/dist_train.sh CONFIG N (or '
                              'torchrun ... tools/train.py CONFIG --launcher pytorch)')
        device = get_device()
        model = model.to(device)
        mesh = init_device_mesh(device if device == 'cpu' else torch.device(device).type,
                                (dist.get_world_size(), ))
        options = dict(mesh=mesh, reshard_after_forward=self.reshard_after_forward,
                       mp_policy=self._mp_policy())
        self.sharded_units = self._units(model)
        for path in self.sharded_units:
            fully_shard(model.get_submodule(path), **options)
        fully_shard(model, **options)
        return model

    # ------------------------------------------------------------------
    # State dicts

    def _options(self, full: bool, strict: bool = True):
        from torch.distributed.checkpoint.state_dict import StateDictOptions

        return StateDictOptions(full_state_dict=full, cpu_offload=full, strict=strict)

    def model_state_dict(self) -> dict:
        """The whole model's state dict on rank 0 (others get an empty dict):
        what ``'full'`` checkpoints and exports hold."""
        from torch.distributed.checkpoint.state_dict import get_model_state_dict

        return get_model_state_dict(self.model, options=self._options(full=True))

    def optim_state_dict(self) -> dict:
        from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

        return get_optimizer_state_dict(self.model, self.optim_wrapper.optimizer,
                                        options=self._options(full=True))

    def load_model_state_dict(self, state_dict: dict, *, strict: bool = False,
                              revise_keys: list = [(r'^module.', '')]) -> None:
        """Load a full (unsharded) state dict, present on every rank."""
        import re

        from torch.distributed.checkpoint.state_dict import set_model_state_dict

        for pattern, replacement in revise_keys:
            state_dict = {re.sub(pattern, replacement, k): v for k, v in state_dict.items()}
        result = set_model_state_dict(self.model, state_dict,
                                      options=self._options(full=True, strict=strict))
        if not strict and (result.missing_keys or result.unexpected_keys):
            self.logger.warning(f'load: missing keys {result.missing_keys[:5]}, unexpected '
                                f'keys {result.unexpected_keys[:5]}')

    def load_optim_state_dict(self, state_dict: dict) -> None:
        from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict

        set_optimizer_state_dict(self.model, self.optim_wrapper.optimizer, state_dict,
                                 options=self._options(full=True))

    # ------------------------------------------------------------------
    # Checkpoints

    def save_checkpoint(self, filename: str, *, save_optimizer: bool = True,
                        save_param_scheduler: bool = True, extra_ckpt: Optional[dict] = None,
                        callback: Optional[Callable] = None) -> None:
        """Every rank calls this (gathering or writing shards is collective).

        ``'sharded'``: ``filename`` becomes a folder with each rank's shards
        of the model (and optimizer) and ``extra_state.pth`` (meta, message
        hub, schedulers, the modules' extra state) from rank 0. ``'full'``: one file from rank 0.
        """
        extra = dict(extra_ckpt or {})
        extra.setdefault('meta', {})
        extra['meta'].update(seed=self.seed, time=time.strftime('%Y%m%d_%H%M%S'),
                             mmengine=mmengine.__version__, fsdp2_state=self.state_dict_type)
        if save_param_scheduler and hasattr(self, 'param_schedulers'):
            extra['param_schedulers'] = self.scheduler_state_dict()
        if self.state_dict_type == 'full':
            extra['state_dict'] = self.model_state_dict()
            if save_optimizer and hasattr(self, 'optim_wrapper'):
                extra['optimizer'] = self.optim_state_dict()
            if callback is not None:
                callback(extra)
            if is_main_process():
                from mmengine.runner.checkpoint import save_checkpoint
                save_checkpoint(extra, filename)
            dist.barrier()
            return

        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import get_state_dict

        if save_optimizer and hasattr(self, 'optim_wrapper'):
            model_state, optim_state = get_state_dict(self.model, self.optim_wrapper.optimizer)
            shards = dict(model=model_state, optimizer=optim_state)
        else:
            from torch.distributed.checkpoint.state_dict import get_model_state_dict
            shards = dict(model=get_model_state_dict(self.model))
        extra['model_extra_state'] = _pop_extra_state(shards['model'])
        if callback is not None:
            callback(extra)
        dcp.save(shards, checkpoint_id=filename)
        if is_main_process():
            torch.save(extra, osp.join(filename, EXTRA_FILE))
        dist.barrier()

    def _read_extra(self, filename: str) -> dict:
        from mmfusion.engine.checkpoint import load_checkpoint_file

        path = osp.join(filename, EXTRA_FILE)
        if not osp.isfile(path):
            raise CheckpointError(f'{filename} is a folder but not a sharded FSDP2 checkpoint '
                                  f'(no {EXTRA_FILE} in it)')
        return load_checkpoint_file(path, map_location='cpu')

    def load_checkpoint(self, filename: str, *, map_location: Union[str, Callable] = 'cpu',
                        strict: bool = False, revise_keys: list = [(r'^module.', '')],
                        callback: Optional[Callable] = None) -> dict:
        """A sharded folder (any number of ranks wrote it) or a full ``.pth`` file."""
        if not osp.isdir(filename):
            return super().load_checkpoint(filename, map_location='cpu', strict=strict,
                                           revise_keys=revise_keys, callback=callback)
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import (
            get_model_state_dict,
            set_model_state_dict,
        )

        self.logger.info(f'Load sharded checkpoint from {filename}')
        checkpoint = self._read_extra(filename)
        if callback is not None:
            callback(checkpoint)
        state = dict(model=get_model_state_dict(self.model))
        _pop_extra_state(state['model'])
        dcp.load(state, checkpoint_id=filename)
        state['model'].update(checkpoint.pop('model_extra_state', {}))
        set_model_state_dict(self.model, state['model'])
        return checkpoint

    def resume(self, filename: str, *, resume_optimizer: bool = True,
               resume_param_scheduler: bool = True, map_location: Union[str, Callable] = 'default',
               callback: Optional[Callable] = None) -> dict:
        if not osp.isdir(filename):
            return super().resume(filename, resume_optimizer=resume_optimizer,
                                  resume_param_scheduler=resume_param_scheduler,
                                  map_location='cpu', callback=callback)
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

        self.logger.info(f'Resume sharded checkpoint from {filename}')
        checkpoint = self._read_extra(filename)
        if callback is not None:
            callback(checkpoint)
        optimizer = self.optim_wrapper.optimizer
        model_state, optim_state = get_state_dict(self.model, optimizer)
        _pop_extra_state(model_state)
        state = dict(model=model_state)
        if resume_optimizer:
            state['optimizer'] = optim_state
        dcp.load(state, checkpoint_id=filename)
        state['model'].update(checkpoint.pop('model_extra_state', {}))
        set_state_dict(self.model, optimizer, model_state_dict=state['model'],
                       optim_state_dict=state.get('optimizer', optim_state))
        if resume_param_scheduler and hasattr(self, 'param_schedulers') \
                and 'param_schedulers' in checkpoint:
            self.load_scheduler_state_dict(checkpoint.pop('param_schedulers'))
        seed = checkpoint['meta'].get('seed')
        if seed is not None and seed != self._randomness.get('seed'):
            self._randomness.update(seed=seed)
            self._set_randomness(**self._randomness)
        return checkpoint


__all__ = ['EXTRA_FILE', 'FSDP2Strategy']
