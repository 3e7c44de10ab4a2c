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
    matching DDP settings.
    """
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    cfg.launcher = launcher
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(config))[0])
    if launcher != 'none':
        init_distributed(launcher, timeout_s=cfg.get('dist_timeout_s', 1800))
        cfg.model_wrapper_cfg = distributed_model_wrapper_cfg(cfg.get('model_wrapper_cfg'))
    return cfg
