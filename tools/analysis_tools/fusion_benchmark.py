"""Train every fusion benchmark config and write a markdown table.

    python tools/analysis_tools/fusion_benchmark.py \
        [--configs configs/fusion_benchmark/*.py] [--out docs/fusion_benchmark.md] \
        [--work-dir work_dirs/fusion_benchmark] [--cfg-options ...]

Every config in ``configs/fusion_benchmark/`` shares the task, encoders,
head, data and schedule and differs only in ``model.fusion``, so the table
compares fusion modules alone. For each config the tool trains with
MMEngine's Runner (validation every epoch) and reports:

* val top-1 accuracy after the last epoch, and the best epoch's;
* the parameter count of the fusion module (``model.fusion``);
* training-step throughput in samples/s: the time from MMEngine's
  ``before_train_iter`` to ``after_train_iter`` (data preprocessing, forward,
  backward, optimizer step), so data loading and validation, the same for
  every method, are left out; the first 5 iterations are warm-up.

The rows keep the order of ``--configs``; the majority-class accuracy of the
val split is printed as the floor any method must beat.
"""
import argparse
import glob
import os
import os.path as osp
import time
from collections import Counter

import torch
from mmengine.config import DictAction
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner

import mmfusion  # noqa: F401
from mmfusion.apis import resolve_vocabularies, use_built_train_set
from mmfusion.errors import ConfigError
from mmfusion.utils import (
    check_modalities,
    explain_config_errors,
    read_tool_config,
    register_all_modules,
    run_main,
)

WARMUP_ITERS = 5


class BenchmarkHook(Hook):
    """Collects val metrics per epoch and times training iterations."""
    priority = 'LOWEST'

    def __init__(self) -> None:
        self.val_metrics = []
        self.iters = []  # (seconds, samples) of every training iteration
        self._iter_start = None

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        self._iter_start = time.perf_counter()

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self.iters.append((time.perf_counter() - self._iter_start,
                           len(data_batch['data_samples'])))

    def throughput(self) -> float:
        """Samples/s, leaving out the warm-up iterations when there are enough."""
        timed = self.iters[WARMUP_ITERS:] if len(self.iters) > 2 * WARMUP_ITERS else self.iters
        return sum(n for _, n in timed) / max(sum(t for t, _ in timed), 1e-9)

    def after_val_epoch(self, runner, metrics=None) -> None:
        self.val_metrics.append(dict(metrics or {}))


def majority_accuracy(runner: Runner) -> float:
    dataset = runner.val_dataloader.dataset
    labels = [tuple(dataset.get_data_info(i)['gt_label']) for i in range(len(dataset))]
    return 100.0 * Counter(labels).most_common(1)[0][1] / len(labels)


def run_one(config: str, work_dir: str, cfg_options: dict | None, metric: str) -> dict:
    cfg = read_tool_config(config, cfg_options)
    name = osp.splitext(osp.basename(config))[0]
    cfg.work_dir = osp.join(work_dir, name)
    cfg.experiment_name = f'fusion_benchmark_{name}'
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=-1, save_last=False)
    check_modalities(cfg, ('train_dataloader', 'val_dataloader'))
    with explain_config_errors(cfg):
        train_set = resolve_vocabularies(cfg)  # word/answer lists from the training set
        runner = Runner.from_cfg(cfg)
        use_built_train_set(runner, train_set)
        hook = BenchmarkHook()
        runner.register_hook(hook)
        runner.train()
    model = runner.model.module if is_model_wrapper(runner.model) else runner.model
    scores = [m[metric] for m in hook.val_metrics if metric in m]
    if not scores:
        raise ConfigError(f'--metric {metric}: the evaluator of {config} reported no such '
                          'metric; got '
                          f'{sorted(hook.val_metrics[-1]) if hook.val_metrics else "nothing"}')
    return dict(name=name, fusion=type(model.fusion).__name__, form=model.fusion.input_form,
                last=scores[-1], best=max(scores),
                params=sum(p.numel() for p in model.fusion.parameters()),
                throughput=hook.throughput(),
                floor=majority_accuracy(runner), epochs=len(scores))


def markdown(rows: list, metric: str) -> str:
    lines = [f'| Fusion | Input | val {metric} (last) | best epoch | fusion params '
             '| train samples/s |',
             '|---|---|---|---|---|---|']
    for r in rows:
        lines.append(f'| {r["fusion"]} | {r["form"]} | {r["last"]:.2f} | {r["best"]:.2f} | '
                     f'{r["params"]:,} | {r["throughput"]:.0f} |')
    return '\n'.join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--configs', nargs='+',
                        default=sorted(glob.glob('configs/fusion_benchmark/*.py')))
    parser.add_argument('--out', default='work_dirs/fusion_benchmark/results.md')
    parser.add_argument('--work-dir', default='work_dirs/fusion_benchmark')
    parser.add_argument('--metric', default='accuracy/top1')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args()

    configs = args.configs
    if not configs:
        raise SystemExit('no configs given or found under configs/fusion_benchmark/')
    register_all_modules()
    rows = []
    for i, config in enumerate(configs, start=1):
        print(f'[{i}/{len(configs)}] {config}', flush=True)
        rows.append(run_one(config, args.work_dir, args.cfg_options, args.metric))
        table = markdown(rows, args.metric)
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w', encoding='utf-8') as f:  # rewritten after every method
            f.write(table + '\n')
    floor = rows[0]['floor']
    print(table)
    print(f'\nmajority-class val accuracy: {floor:.2f}; {rows[0]["epochs"]} epochs each; '
          f'{torch.get_num_threads()} threads')


if __name__ == '__main__':
    run_main(main)
