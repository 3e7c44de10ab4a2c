"""Starting distributed training on GPUs (nccl) and on CPU-only machines (gloo)."""
import datetime
import os
import re
import shutil
import subprocess
from typing import Optional

from mmfusion.errors import LauncherError, LostRankError

# how gloo and nccl report a peer that went away or stopped answering
_LOST_PEER = re.compile(r'Connection (reset|closed) by peer|Broken pipe|[Tt]imed out|'
                        r'timeout|NCCL communicator was aborted|remote process exited')


LAUNCHERS = ('none', 'pytorch', 'slurm', 'mpi')
# what torch.distributed's env:// initialisation reads (torchrun sets all four)
TORCH_DIST_ENV = ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT')
# (variable torch reads, where each MPI implementation puts it): Open MPI's
# mpirun, then MPICH / Intel MPI (PMI)
_MPI_ENV = (('RANK', ('OMPI_COMM_WORLD_RANK', 'PMI_RANK')),
            ('WORLD_SIZE', ('OMPI_COMM_WORLD_SIZE', 'PMI_SIZE')),
            ('LOCAL_RANK', ('OMPI_COMM_WORLD_LOCAL_RANK', 'MPI_LOCALRANKID')))
DEFAULT_MASTER_PORT = '29500'  # torch.distributed's default


def _names(keys) -> str:
    keys = list(keys)
    return keys[0] if len(keys) == 1 else ', '.join(keys[:-1]) + ' and ' + keys[-1]


def _slurm_env_to_torch_env(port: Optional[str]) -> None:
    """Fill torchrun's variables (RANK, WORLD_SIZE, ...) from SLURM's.

    Raises:
        LauncherError: outside a SLURM job step (``srun``), naming the
            missing variables, or when rank 0's host cannot be found.
    """
    missing = [k for k in ('SLURM_PROCID', 'SLURM_NTASKS') if k not in os.environ]
    if 'MASTER_ADDR' not in os.environ and 'SLURM_NODELIST' not in os.environ:
        missing.append('SLURM_NODELIST')
    if missing:
        raise LauncherError(
            f'--launcher slurm needs the environment variables that srun sets, and '
            f'{_names(missing)} {"is" if len(missing) == 1 else "are"} not set: start the '
            'tool with srun (tools/slurm_train.sh PARTITION JOB CONFIG WORK_DIR), or use '
            '--launcher none for one process')
    os.environ.setdefault('RANK', os.environ['SLURM_PROCID'])
    os.environ.setdefault('WORLD_SIZE', os.environ['SLURM_NTASKS'])
    os.environ.setdefault('LOCAL_RANK', os.environ.get('SLURM_LOCALID', '0'))
    if 'MASTER_ADDR' not in os.environ:
        node_list = os.environ['SLURM_NODELIST']
        # the first host of the job is rank 0's; a failed scontrol must not
        # become the address (getoutput would return its error text)
        if shutil.which('scontrol') is None:
            raise LauncherError('--launcher slurm: scontrol is not on PATH, so the host of '
                                f'rank 0 cannot be found from SLURM_NODELIST={node_list}; '
                                'set MASTER_ADDR to it')
        proc = subprocess.run(['scontrol', 'show', 'hostnames', node_list],
                              capture_output=True, text=True)
        hosts = proc.stdout.split()
        if proc.returncode != 0 or not hosts:
            raise LauncherError(f'--launcher slurm: `scontrol show hostnames {node_list}` '
                                f'failed ({proc.stderr.strip()[:200]}); set MASTER_ADDR to '
                                'the host of rank 0')
        os.environ['MASTER_ADDR'] = hosts[0]
    os.environ.setdefault('MASTER_PORT', port or DEFAULT_MASTER_PORT)


def _mpi_env_to_torch_env() -> None:
    """Fill torchrun's variables from the ones ``mpirun`` sets (Open MPI's
    ``OMPI_COMM_WORLD_*``, or MPICH's and Intel MPI's ``PMI_*``).

    MPI does not say where rank 0 runs; when every rank is on this host
    (Open MPI's ``OMPI_COMM_WORLD_LOCAL_SIZE`` equals the world size), it is
    this host, otherwise ``MASTER_ADDR`` must be given (``mpirun -x
    MASTER_ADDR=host0``).

    Raises:
        LauncherError: outside ``mpirun``, or across hosts without MASTER_ADDR.
    """
    for key, sources in _MPI_ENV:
        found = next((os.environ[s] for s in sources if s in os.environ), None)
        if found is not None:
            os.environ.setdefault(key, found)
    missing = [f'{key} ({" or ".join(sources)})' for key, sources in _MPI_ENV[:2]
               if key not in os.environ]
    if missing:
        raise LauncherError(
            '--launcher mpi needs the environment that mpirun sets, and '
            f'{_names(missing)} {"is" if len(missing) == 1 else "are"} not set: start the '
            'tool with mpirun -np N python TOOL ... --launcher mpi, or use --launcher none '
            'for one process')
    local_size = os.environ.get('OMPI_COMM_WORLD_LOCAL_SIZE')
    if 'MASTER_ADDR' not in os.environ:
        if local_size is None or local_size != os.environ['WORLD_SIZE']:
            raise LauncherError(
                f'--launcher mpi: MASTER_ADDR is not set, and the {os.environ["WORLD_SIZE"]} '
                'ranks may run on several hosts, so the address of rank 0 is unknown; set it '
                'for every rank, e.g. mpirun -x MASTER_ADDR=<host of rank 0> -x MASTER_PORT=29500')
        os.environ['MASTER_ADDR'] = '127.0.0.1'  # every rank runs on this host
    os.environ.setdefault('MASTER_PORT', DEFAULT_MASTER_PORT)


def check_launcher(launcher: str) -> None:
    """Refuse a launcher name other than none, pytorch, slurm and mpi.

    Raises:
        LauncherError: naming the launcher and the valid ones.
    """
    if launcher not in LAUNCHERS:
        raise LauncherError(f'unknown launcher {launcher!r}; expected one of '
                            f'{", ".join(LAUNCHERS)}')


def init_distributed(launcher: str, backend: Optional[str] = None,
                     timeout_s: int = 1800) -> str:
    """Create the default process group before MMEngine's Runner is built.

    MMEngine's own ``init_dist('pytorch')`` calls ``torch.cuda.set_device``
    and fails on machines without a GPU. Creating the group here (``nccl`` on
    GPUs, ``gloo`` otherwise) makes the Runner skip its own initialisation, so
    the same command trains on a laptop and on a cluster.

    Args:
        launcher: ``'pytorch'`` (torchrun), ``'slurm'`` (srun) or ``'mpi'``
            (mpirun).
        backend: force a backend; default nccl with CUDA, gloo without.
        timeout_s: collective timeout, so a dead rank ends the others.

    Returns:
        The backend used.

    Raises:
        LauncherError: an unknown launcher, or a launcher started without the
            environment it needs (named in the message).
    """
    import torch
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_backend()
    check_launcher(launcher)
    if launcher == 'slurm':
        _slurm_env_to_torch_env(os.environ.get('PORT') or os.environ.get('MASTER_PORT'))
    elif launcher == 'mpi':
        _mpi_env_to_torch_env()
    missing = [k for k in TORCH_DIST_ENV if k not in os.environ]
    if missing:
        raise LauncherError(
            f'--launcher {launcher} needs the environment variables that torchrun sets, and '
            f'{_names(missing)} {"is" if len(missing) == 1 else "are"} not set: start the '
            'tool with torchrun, e.g. bash tools/dist_train.sh CONFIG NUM_PROCESSES, or use '
            '--launcher none for one process')
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
    ``destroy_process_group`` before exit. Objects that still hold the
    group's work handles (FSDP2 keeps its last collectives' handles in the
    model) are collected first, while the interpreter can still run their
    destructors: freed during interpreter shutdown they abort the same way.
    Call it after dropping the last reference to the runner. Does nothing
    when not distributed.
    """
    import gc

    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        gc.collect()
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
