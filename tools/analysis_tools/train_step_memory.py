"""Peak memory of one training step, with and without gradient checkpointing.

    python tools/analysis_tools/train_step_memory.py CONFIG [--batch-size 8]
        [--cfg-options ...] [--data-root DIR] [--out result.json]

Each variant runs in a fresh process (so one variant's freed memory cannot
hide in the other's numbers): the config's model and optimizer wrapper are
built, ``--batch-size`` samples of its training set are collated, one warm-up
training step allocates the optimizer state, and the next step is measured:

* on a GPU: ``torch.cuda.max_memory_allocated`` during the step, over what was
  allocated before it;
* on CPU: the peak resident set size (``VmHWM``, reset through
  ``/proc/self/clear_refs``) during the step, over the resident size before
  it: the memory the step's activations and gradients add (memory the
  allocator kept from the warm-up step is handed back first, ``malloc_trim``).

The variants set ``grad_checkpointing`` of every encoder (and the fusion) of
``model`` to True and to False. Prints a table with the ratio; ``--out``
writes it as JSON.
"""
import argparse
import ctypes
import gc
import json
import os
import subprocess
import sys
import time
from typing import Dict

import mmfusion  # noqa: F401
from mmfusion.utils import add_data_root_argument, read_tool_config, register_all_modules, run_main


def parse_args() -> argparse.Namespace:
    from mmengine.config import DictAction

    parser = argparse.ArgumentParser(description='Peak memory of one training step, with and '
                                     'without gradient checkpointing')
    parser.add_argument('config')
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    add_data_root_argument(parser)
    parser.add_argument('--out', help='write the results as JSON here')
    parser.add_argument('--variant', choices=['on', 'off'], help=argparse.SUPPRESS)
    return parser.parse_args()


def _proc_status(field: str) -> int:
    """A memory field of /proc/self/status in bytes."""
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f'/proc/self/status has no {field}')


def _malloc_trim() -> None:
    try:
        ctypes.CDLL('libc.so.6').malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: the numbers include reused memory
        pass


def _reset_peak_rss() -> None:
    # "5" resets the peak resident set size (Linux >= 4.0)
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')


def set_grad_checkpointing(cfg, enabled: bool) -> list:
    """Set ``grad_checkpointing`` on every encoder (and the fusion) of ``cfg.model``."""
    parts = []
    model = cfg.model
    for name, enc in (model.get('encoders') or {}).items():
        if enc is not None:
            enc['grad_checkpointing'] = enabled
            parts.append(f'model.encoders.{name}')
    return parts


def measure(args: argparse.Namespace) -> Dict[str, float]:
    """One variant, in this process."""
    import torch
    from mmengine.dataset import pseudo_collate
    from mmengine.optim import build_optim_wrapper

    from mmfusion.apis import resolve_vocabularies
    from mmfusion.registry import DATASETS, MODELS

    register_all_modules()
    cfg = read_tool_config(args.config, args.cfg_options, args.data_root)
    parts = set_grad_checkpointing(cfg, args.variant == 'on')
    train_set = resolve_vocabularies(cfg)
    if train_set is None:
        train_set = DATASETS.build(cfg.train_dataloader.dataset)
    batch = pseudo_collate([train_set[i] for i in range(args.batch_size)])
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    cuda = torch.cuda.is_available()
    if cuda:
        model = model.cuda()
    model.train()
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    model.train_step(batch, optim_wrapper)  # warm-up: optimizer state, lazy buffers
    gc.collect()
    if not cuda:
        # glibc keeps the warm-up step's freed activations mapped; without
        # handing them back, the measured step reuses them and its peak RSS
        # hardly moves whatever the activations cost
        _malloc_trim()

    if cuda:
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    else:
        before = _proc_status('VmRSS')
        _reset_peak_rss()
    start = time.perf_counter()
    log = model.train_step(batch, optim_wrapper)
    if cuda:
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated()
    else:
        peak = _proc_status('VmHWM')
    seconds = time.perf_counter() - start
    return dict(grad_checkpointing=args.variant == 'on', parts=parts,
                device='cuda' if cuda else 'cpu',
                measure='max_memory_allocated' if cuda else 'peak RSS',
                step_peak_mib=(peak - before) / 2**20, before_mib=before / 2**20,
                step_seconds=seconds, loss=float(log['loss']), batch_size=args.batch_size,
                autocast=bool(getattr(optim_wrapper, 'enabled_for', lambda m: False)(model)))


def main() -> None:
    args = parse_args()
    if args.variant:
        print('RESULT ' + json.dumps(measure(args)))
        return
    results = []
    for variant in ('off', 'on'):
        cmd = [sys.executable, os.path.abspath(__file__), args.config, '--variant', variant,
               '--batch-size', str(args.batch_size)]
        if args.data_root:
            cmd += ['--data-root', args.data_root]
        if args.cfg_options:
            cmd += ['--cfg-options'] + [f'{k}={_plain(v)}' for k, v in args.cfg_options.items()]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith('RESULT ')]
        if proc.returncode != 0 or not lines:
            sys.stderr.write(proc.stderr[-3000:])
            raise SystemExit(f'the grad_checkpointing={variant} run failed '
                             f'(exit status {proc.returncode})')
        results.append(json.loads(lines[-1][len('RESULT '):]))
    off, on = results
    print(f'{args.config}: one training step, batch {args.batch_size}, {off["device"]} '
          f'({off["measure"]} over the memory before the step; autocast={off["autocast"]})')
    print(f'{"grad_checkpointing":<20}{"step peak MiB":>15}{"step s":>10}{"loss":>10}')
    for r in results:
        print(f'{str(r["grad_checkpointing"]):<20}{r["step_peak_mib"]:>15.1f}'
              f'{r["step_seconds"]:>10.2f}{r["loss"]:>10.4f}')
    ratio = on['step_peak_mib'] / off['step_peak_mib'] if off['step_peak_mib'] else float('nan')
    print(f'checkpointing/plain: memory x{ratio:.2f}, time '
          f'x{on["step_seconds"] / off["step_seconds"]:.2f}')
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(dict(results=results, memory_ratio=ratio), f, indent=1)


def _plain(value) -> str:
    if isinstance(value, (list, tuple)):
        inner = ','.join(_plain(v) for v in value)
        return f'[{inner}]' if isinstance(value, list) else f'({inner})'
    return str(value)


if __name__ == '__main__':
    run_main(main)
