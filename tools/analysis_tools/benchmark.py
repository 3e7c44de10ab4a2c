"""Training throughput of a config: end to end vs. compute-only vs. data pipeline.

    python tools/analysis_tools/benchmark.py CONFIG [--iters 120] [--warmup 10]

``--warmup`` iterations run untimed first; more than an epoch's worth
measures the steady state, where caches (e.g. ``LoadImageFromFile``'s decoded
images) are warm.

Measures, in one process and one run (so the ratios are comparable on a noisy
machine):

1. end to end: MMEngine's Runner training loop with the config's data loader,
   data preprocessor, hooks and logging (validation and checkpoints off);
2. compute-only bound: the same model (its data preprocessor included: it
   is part of the model in MMEngine) and optimizer in a bare PyTorch loop
   (preprocess, forward, backward, clip, step) over batches collated in
   advance;
3. data pipeline alone: iterating the config's training data loader.

and prints samples/s of each and the ratios end-to-end / compute-only and
pipeline / end-to-end.

``--clock cpu`` times CPU seconds of the process instead of elapsed time: on a
machine shared with other jobs, time-slicing stretches elapsed time by
whatever else runs, differently in each phase, while the CPU time each phase
spends is what the ratios are about (valid with ``num_workers=0``, where all
the work is in this process; the tool refuses worker processes with it).
It is exact with one PyTorch thread (``OMP_NUM_THREADS=1``): with more, the
CPU time includes the thread pool's spin-waiting.
``--compile`` sets MMEngine's ``compile=True`` for the end-to-end loop and
``torch.compile``-s the model of the compute-only loop, to measure what
compilation gains.
"""
import argparse
import tempfile
import time
from collections.abc import Callable

import torch
from mmengine.config import Config, DictAction
from mmengine.hooks import Hook
from mmengine.runner import Runner

import mmfusion  # noqa: F401
from mmfusion.apis import resolve_vocabularies, use_built_train_set
from mmfusion.utils import (
    add_data_root_argument,
    check_modalities,
    explain_config_errors,
    read_tool_config,
    register_all_modules,
    run_main,
)


class ThroughputHook(Hook):
    """Times training iterations after a warm-up."""
    priority = 'LOWEST'

    def __init__(self, warmup: int, clock: Callable[[], float]) -> None:
        self.warmup = warmup
        self.clock = clock
        self.start = None
        self.end = None

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if runner.iter + 1 == self.warmup:
            self.start = self.clock()
        self.end = self.clock()


def end_to_end(runner: Runner, warmup: int, iters: int, clock: Callable[[], float]) -> float:
    hook = ThroughputHook(warmup, clock)
    runner.register_hook(hook)
    runner.train()
    batch = runner.train_dataloader.batch_size
    return iters * batch / (hook.end - hook.start)


def compute_only(runner: Runner, cfg: Config, warmup: int, iters: int,
                 clock: Callable[[], float], compile_model: bool = False) -> float:
    model, optimizer = runner.model, runner.optim_wrapper.optimizer
    forward = torch.compile(model) if compile_model else model
    clip = (cfg.optim_wrapper.get('clip_grad') or {}).get('max_norm')
    # distinct batches, as the real loop sees: cycling a few would keep them in cache
    loader = endless(runner.train_dataloader)
    batches = [next(loader) for _ in range(warmup + iters)]
    model.train()

    def step(batch):
        data = model.data_preprocessor(batch, True)
        losses = forward(**data, mode='loss')
        loss = sum(v for k, v in losses.items() if 'loss' in k)
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        optimizer.zero_grad()

    for batch in batches[:warmup]:
        step(batch)
    start = clock()
    for batch in batches[warmup:]:
        step(batch)
    elapsed = clock() - start
    return iters * runner.train_dataloader.batch_size / elapsed


def endless(loader):
    """Batches of ``loader``, starting a new epoch whenever one ends."""
    while True:
        yield from loader


def pipeline_only(runner: Runner, warmup: int, iters: int, clock: Callable[[], float]) -> float:
    batches = endless(runner.train_dataloader)
    for _ in range(warmup):
        next(batches)
    start = clock()
    n = sum(len(next(batches)['data_samples']) for _ in range(iters))
    return n / (clock() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('--iters', type=int, default=120, help='timed iterations')
    parser.add_argument('--warmup', type=int, default=10, help='untimed iterations first')
    parser.add_argument('--clock', choices=['wall', 'cpu'], default='wall',
                        help="'cpu': CPU seconds of this process (robust to other jobs "
                        "on a shared machine; needs num_workers=0)")
    parser.add_argument('--compile', action='store_true',
                        help='torch.compile the model (MMEngine compile=True) in both loops')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    add_data_root_argument(parser)
    args = parser.parse_args()
    if args.iters < 1:
        parser.error(f'--iters must be at least 1, got {args.iters}')
    if args.warmup < 1:
        parser.error(f'--warmup must be at least 1, got {args.warmup}')

    register_all_modules()
    cfg = read_tool_config(args.config, args.cfg_options, args.data_root)
    cfg.work_dir = tempfile.mkdtemp(prefix='mmfusion_benchmark_')
    cfg.train_cfg = dict(by_epoch=False, max_iters=args.warmup + args.iters,
                         val_interval=10**9)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.test_cfg = cfg.test_dataloader = cfg.test_evaluator = None
    cfg.param_scheduler = None  # schedules change no compute
    cfg.default_hooks.checkpoint = None
    cfg.log_level = 'WARNING'
    if args.compile:
        cfg.compile = True
    if args.clock == 'cpu' and cfg.train_dataloader.get('num_workers', 0):
        parser.error('--clock cpu counts this process only, so it needs '
                     'train_dataloader.num_workers=0 (add --cfg-options '
                     'train_dataloader.num_workers=0 train_dataloader.persistent_workers=False)')
    clock = time.process_time if args.clock == 'cpu' else time.perf_counter
    check_modalities(cfg, ('train_dataloader',))
    with explain_config_errors(cfg):
        train_set = resolve_vocabularies(cfg)  # word/answer lists from the training set
        runner = Runner.from_cfg(cfg)
        use_built_train_set(runner, train_set)
        e2e = end_to_end(runner, args.warmup, args.iters, clock)
    bound = compute_only(runner, cfg, args.warmup, args.iters, clock, args.compile)
    data = pipeline_only(runner, args.warmup, args.iters, clock)
    print(f'config: {args.config}  batch size: {runner.train_dataloader.batch_size}  '
          f'threads: {torch.get_num_threads()}  clock: {args.clock}'
          f'{"  compiled" if args.compile else ""}')
    print(f'end-to-end training  : {e2e:8.1f} samples/s')
    print(f'compute-only bound   : {bound:8.1f} samples/s')
    print(f'data pipeline alone  : {data:8.1f} samples/s')
    print(f'end-to-end / compute-only = {e2e / bound:.3f}')
    print(f'pipeline / end-to-end     = {data / e2e:.3f}')


if __name__ == '__main__':
    run_main(main)
