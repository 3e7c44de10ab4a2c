"""Config preparation shared by the command-line tools."""
import os.path as osp
from typing import Optional

from mmengine.config import Config

from .dist import distributed_model_wrapper_cfg, init_distributed


def load_tool_config(config: str, work_dir: Optional[str] = None,
                     cfg_options: Optional[dict] = None, launcher: str = 'none') -> Config:
    """Read a config as ``tools/train.py`` and ``tools/test.py`` do.

    Applies ``--cfg-options``, sets the launcher and the work dir (given, or
    the config's, or ``./work_dirs/<config name>``), and for a distributed
    launcher starts the process group (gloo on CPU, nccl on GPU) and the
    matching DDP settings. ``env_cfg.torch_num_threads`` sets PyTorch's
    intra-op threads.
    """
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    cfg.launcher = launcher
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(config))[0])
    threads = (cfg.get('env_cfg') or {}).get('torch_num_threads')
    if threads:
        # MMEngine's env_cfg has no thread setting; a small model on few cores
        # can train faster with one intra-op thread and a data-loader worker
        import torch
        torch.set_num_threads(int(threads))
    if launcher != 'none':
        # MMEngine's key for the collective timeout, in seconds: a rank that
        # hangs fails the others after this long instead of blocking them forever
        timeout = (cfg.get('env_cfg') or {}).get('dist_cfg', {}).get('timeout', 1800)
        backend = init_distributed(launcher, timeout_s=int(timeout))
        # recorded so that the config dumped into the work dir says what was used
        cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})['backend'] = backend
        cfg.model_wrapper_cfg = distributed_model_wrapper_cfg(cfg.get('model_wrapper_cfg'))
    return cfg
