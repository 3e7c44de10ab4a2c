"""Training throughput of a config: end to end vs. compute-only vs. data pipeline.

    python tools/analysis_tools/benchmark.py CONFIG [--iters 120] [--warmup 10]

``--warmup`` iterations run untimed first; more than an epoch's worth
measures the steady state, where caches (e.g. ``LoadImageFromFile``'s decoded
images) are warm.

Measures, in one process and one training run, alternating between them in
chunks of ``--chunk`` iterations (so the ratios are comparable on a noisy
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
from mmengine.config import DictAction
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


class InterleavedThroughputHook(Hook):
    """Times the three loops in alternating chunks inside one training run.

    After ``warmup`` Runner iterations, every ``chunk`` Runner iterations the
    hook runs ``chunk`` steps of the compute-only loop and fetches ``chunk``
    batches from a data loader of its own, timing each separately; the
    Runner's own time excludes those blocks. Alternating keeps all three
    under the same machine conditions (a shared machine drifts from minute to
    minute, which biased the ratios when the loops ran one after the other).
    """
    priority = 'LOWEST'

    def __init__(self, warmup: int, chunk: int, clock: Callable[[], float],
                 compile_model: bool = False) -> None:
        self.warmup = warmup
        self.chunk = chunk
        self.clock = clock
        self.compile_model = compile_model
        self.times = dict(end_to_end=0.0, compute_only=0.0, pipeline=0.0)
        self.samples = dict(end_to_end=0, compute_only=0, pipeline=0)
        self.mark = None

    def before_train(self, runner) -> None:
        self.batch_size = runner.train_dataloader.batch_size
        self.batches = endless(runner.train_dataloader)  # collated in advance, per chunk
        self.pipeline = endless(runner.train_dataloader)  # a second iterator: pipeline alone
        self.step = compute_step(runner, self.compile_model)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        done = runner.iter + 1
        if done < self.warmup:
            return
        if done == self.warmup:
            self._compute_chunk(timed=False)  # warm the bare loop (and compile it) too
            self.mark = self.clock()
            return
        if (done - self.warmup) % self.chunk:
            return
        self._add('end_to_end', self.clock() - self.mark, self.chunk * self.batch_size)
        self._compute_chunk(timed=True)
        start = self.clock()
        n = sum(len(next(self.pipeline)['data_samples']) for _ in range(self.chunk))
        self._add('pipeline', self.clock() - start, n)
        self.mark = self.clock()

    def _compute_chunk(self, timed: bool) -> None:
        batches = [next(self.batches) for _ in range(self.chunk)]  # distinct, as training
        self.step.model.train()
        start = self.clock()
        for batch in batches:
            self.step(batch)
        if timed:
            self._add('compute_only', self.clock() - start, self.chunk * self.batch_size)

    def _add(self, loop: str, seconds: float, samples: int) -> None:
        self.times[loop] += seconds
        self.samples[loop] += samples

    def throughput(self, loop: str) -> float:
        return self.samples[loop] / self.times[loop]


def compute_step(runner: Runner, compile_model: bool = False) -> Callable[[dict], None]:
    """One step of the bare PyTorch loop on a collated batch: the model's data
    preprocessor, forward, loss, backward, gradient clipping, optimizer step."""
    model, optimizer = runner.model, runner.optim_wrapper.optimizer
    forward = torch.compile(model) if compile_model else model
    clip = (runner.cfg.optim_wrapper.get('clip_grad') or {}).get('max_norm')

    def step(batch: dict) -> None:
        data = model.data_preprocessor(batch, True)
        losses = forward(**data, mode='loss')
        loss = sum(v for k, v in losses.items() if 'loss' in k)
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        optimizer.zero_grad()
    step.model = model
    return step


def endless(loader):
    """Batches of ``loader``, starting a new epoch whenever one ends."""
    while True:
        yield from loader


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('--iters', type=int, default=120, help='timed iterations')
    parser.add_argument('--warmup', type=int, default=10, help='untimed iterations first')
    parser.add_argument('--chunk', type=int, default=10,
                        help='iterations of each loop between switches to the next')
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
    if args.chunk < 1 or args.iters % args.chunk:
        parser.error(f'--chunk must be >= 1 and divide --iters {args.iters}, got {args.chunk}')

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
        hook = InterleavedThroughputHook(args.warmup, args.chunk, clock, args.compile)
        runner.register_hook(hook)
        runner.train()
    e2e, bound, data = (hook.throughput(loop)
                        for loop in ('end_to_end', 'compute_only', 'pipeline'))
    print(f'config: {args.config}  batch size: {runner.train_dataloader.batch_size}  '
          f'threads: {torch.get_num_threads()}  clock: {args.clock}  '
          f'interleaved in chunks of {args.chunk}{"  compiled" if args.compile else ""}')
    print(f'end-to-end training  : {e2e:8.1f} samples/s')
    print(f'compute-only bound   : {bound:8.1f} samples/s')
    print(f'data pipeline alone  : {data:8.1f} samples/s')
    print(f'end-to-end / compute-only = {e2e / bound:.3f}')
    print(f'pipeline / end-to-end     = {data / e2e:.3f}')


if __name__ == '__main__':
    run_main(main)
