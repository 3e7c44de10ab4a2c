"""Starting distributed training on GPUs (nccl) and on CPU-only machines (gloo)."""
import datetime
import os
import re
import subprocess
from typing import Optional

from mmfusion.errors import LostRankError

# how gloo and nccl report a peer that went away or stopped answering
_LOST_PEER = re.compile(r'Connection (reset|closed) by peer|Broken pipe|[Tt]imed out|'
                        r'timeout|NCCL communicator was aborted|remote process exited')


def _slurm_env_to_torch_env(port: Optional[str]) -> None:
    """Fill torchrun's variables (RANK, WORLD_SIZE, ...) from SLURM's."""
    os.environ.setdefault('RANK', os.environ['SLURM_PROCID'])
    os.environ.setdefault('WORLD_SIZE', os.environ['SLURM_NTASKS'])
    os.environ.setdefault('LOCAL_RANK', os.environ.get('SLURM_LOCALID', '0'))
    if 'MASTER_ADDR' not in os.environ:
        node_list = os.environ['SLURM_NODELIST']
        first = subprocess.getoutput(f'scontrol show hostname {node_list} | head -n1')
        os.environ['MASTER_ADDR'] = first
    os.environ.setdefault('MASTER_PORT', port or '29500')


def init_distributed(launcher: str, backend: Optional[str] = None,
                     timeout_s: int = 1800) -> str:
    """Create the default process group before MMEngine's Runner is built.

    MMEngine's own ``init_dist('pytorch')`` calls ``torch.cuda.set_device``
    and fails on machines without a GPU. Creating the group here (``nccl`` on
    GPUs, ``gloo`` otherwise) makes the Runner skip its own initialisation, so
    the same command trains on a laptop and on a cluster.

    Args:
        launcher: ``'pytorch'`` (torchrun) or ``'slurm'`` (srun).
        backend: force a backend; default nccl with CUDA, gloo without.
        timeout_s: collective timeout, so a dead rank ends the others.

    Returns:
        The backend used.
    """
    import torch
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_backend()
    if launcher == 'slurm':
        _slurm_env_to_torch_env(os.environ.get('PORT') or os.environ.get('MASTER_PORT'))
    elif launcher not in ('pytorch', 'mpi'):
        raise ValueError(f'unknown launcher {launcher!r}; use none, pytorch or slurm')
    missing = [k for k in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT')
               if k not in os.environ]
    if missing:
        raise RuntimeError(f'--launcher {launcher} needs the environment variables {missing}; '
                           'start the script with tools/dist_train.sh (torchrun) or srun')
    use_cuda = torch.cuda.is_available()
    backend = backend or ('nccl' if use_cuda else 'gloo')
    if use_cuda:
        torch.cuda.set_device(int(os.environ.get('LOCAL_RANK', 0)) % torch.cuda.device_count())
    dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=timeout_s))
    return backend


def finish_distributed() -> None:
    """Wait for every rank, then tear the process group down.

    A rank that exits while the group's background threads still run (gloo)
    can abort with "terminate called without an active exception", failing
    a run that trained correctly; torch asks for an explicit
    ``destroy_process_group`` before exit. Does nothing when not distributed.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def distributed_model_wrapper_cfg(cfg_wrapper: Optional[dict]) -> Optional[dict]:
    """DDP settings for the Runner: on CPU, DDP must get ``device_ids=None``."""
    import torch

    if torch.cuda.is_available():
        return cfg_wrapper
    wrapper = dict(cfg_wrapper or dict(type='MMDistributedDataParallel'))
    wrapper['device_ids'] = None
    return wrapper


def lost_rank_error(exc: BaseException) -> Optional[LostRankError]:
    """A :class:`LostRankError` explaining ``exc`` if it is a collective that
    failed because another rank died or hung, else None.

    The backends' own messages ("Connection reset by peer", deep inside a DDP
    broadcast) do not say that the cause is on another rank.
    """
    import torch.distributed as dist

    if not (isinstance(exc, RuntimeError) and dist.is_available() and dist.is_initialized()):
        return None
    text = str(exc)
    if not _LOST_PEER.search(text):
        return None
    first_line = text.strip().splitlines()[0][:300]
    return LostRankError(
        f'rank {dist.get_rank()} of {dist.get_world_size()} lost contact with another rank '
        f'during a collective operation ({type(exc).__name__}: {first_line}). Another rank '
        'has probably died or hung: its log says why. The checkpoints written so far are '
        'intact; rerun the same command with --resume to continue from the last one')
