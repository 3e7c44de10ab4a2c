"""Train a model from a config: ``python tools/train.py CONFIG [options]``.

A config mistake (an unknown component or argument, modalities that the data
and the model disagree on) or bad data stops it with one ``mmfusion: error:``
line and exit status 1; ``MMFUSION_TRACEBACK=1`` shows the traceback.

A config with a ``strategy`` (``dict(type='FSDP2Strategy')``,
``'DDPStrategy'``, ``'DeepSpeedStrategy'``) trains with MMEngine's
``FlexibleRunner`` instead of its ``Runner`` (see docs/fine_tuning.md).
"""
import argparse
import os

from mmengine.config import Config, DictAction
from mmengine.runner import FlexibleRunner, Runner

import mmfusion  # noqa: F401  (config and checkpoint compatibility, before any config is read)
from mmfusion.apis import resolve_vocabularies, use_built_train_set
from mmfusion.engine.checkpoint_fit import checkpoint_fit_hook
from mmfusion.errors import ConfigError
from mmfusion.utils import (
    add_data_root_argument,
    check_modalities,
    explain_config_errors,
    finish_distributed,
    load_tool_config,
    prepare_strategy,
    register_all_modules,
    run_main,
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train an mmfusion model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='where logs and checkpoints go '
                        '(default: ./work_dirs/<config name>)')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from the latest checkpoint in the work dir, '
                        'or from the checkpoint path given')
    parser.add_argument('--amp', action='store_true',
                        help='automatic mixed precision (MMEngine AmpOptimWrapper, fp16 with '
                        'dynamic loss scaling; needs a GPU)')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the learning rate by total batch size / '
                        'auto_scale_lr.base_batch_size')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, e.g. train_cfg.max_epochs=2 '
                        'model.fusion.out_dim=256')
    add_data_root_argument(parser)
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    # torchrun passes --local-rank (or --local_rank) to older scripts
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def build_config(args: argparse.Namespace) -> Config:
    cfg = load_tool_config(args.config, args.work_dir, args.cfg_options, args.launcher,
                           data_root=args.data_root)

    if args.amp:
        import torch
        if not torch.cuda.is_available():
            # MMEngine's AmpOptimWrapper supports GPU/NPU/MLU devices only
            raise SystemExit('--amp needs a GPU, and this machine has none (torch.cuda is '
                             'not available); train without --amp')
        if cfg.optim_wrapper.get('type', 'OptimWrapper') != 'AmpOptimWrapper':
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')

    if args.auto_scale_lr:
        if 'auto_scale_lr' not in cfg or 'base_batch_size' not in cfg.auto_scale_lr:
            raise ConfigError('--auto-scale-lr needs auto_scale_lr=dict(base_batch_size=...) '
                              'in the config')
        cfg.auto_scale_lr.enable = True

    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    # a strategy trains with MMEngine's FlexibleRunner (FSDP2, DeepSpeed, DDP)
    compares_checkpoints = prepare_strategy(cfg)
    if compares_checkpoints:
        # resume loads strictly; load_from (fine-tuning) loads what fits and logs
        # one summary table, strictly too with load_from_strict=True
        checkpoint_fit_hook(cfg)
    return cfg


def main() -> None:
    args = parse_args()
    register_all_modules()
    cfg = build_config(args)
    check_modalities(cfg, ('train_dataloader', 'val_dataloader'))
    # the data loaders are built inside train(), so config mistakes surface there too
    with explain_config_errors(cfg):
        # word and answer vocabularies come from the training set, read once
        train_set = resolve_vocabularies(cfg)
        runner = (FlexibleRunner if cfg.get('strategy') else Runner).from_cfg(cfg)
        use_built_train_set(runner, train_set)
        runner.train()
    del runner  # before the process group goes: see finish_distributed
    finish_distributed()


if __name__ == '__main__':
    run_main(main)
