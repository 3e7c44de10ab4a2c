"""Inference path benchmark: start-up time, per-call overhead over the model's
forward at batch 1, and batched throughput.

    python tools/analysis_tools/inference_speed.py CONFIG CHECKPOINT \\
        --inputs image=data/mmshapes/images/val/1000001.png \\
        --text 'how many circles are there?' [--reps 50] [--batch 32] \\
        [--baseline old_pkg.inferencer:MultiModalInferencer]

What it measures, in one run (repetitions interleaved so that machine noise
hits every variant alike; medians reported):

* start-up: a fresh ``python`` process importing the inferencer and building
  it from the config and checkpoint (import and build times separately);
* forward: ``model.test_step`` on an already packed batch of one input (the
  data preprocessor, the network and the head's prediction step): the bound
  for an inferencer;
* inferencer: the same input through ``MultiModalInferencer.__call__`` from
  file paths and from decoded arrays (pipeline, collation, forward, output
  conversion); the overhead is this over the forward;
* throughput: inputs per second at batch 1 and at ``--batch``.

``--baseline MODULE:CLASS`` times another inferencer class (e.g. an older
version importable from ``PYTHONPATH``) alongside, with the same inputs.
"""
import argparse
import importlib
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Callable, Dict, List

STARTUP_SNIPPET = r'''
import json, sys, time
t0 = time.perf_counter()
module, cls = sys.argv[1].split(':')
Inferencer = getattr(__import__(module, fromlist=[cls]), cls)
t1 = time.perf_counter()
Inferencer(sys.argv[2], sys.argv[3], device='cpu')
t2 = time.perf_counter()
print(json.dumps(dict(import_s=t1 - t0, build_s=t2 - t1)))
'''


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='inference path benchmark')
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--inputs', action='append', default=[],
                        help='MODALITY=PATH of a file input (repeatable)')
    parser.add_argument('--text', action='append', default=[],
                        help='MODALITY=TEXT or TEXT (for "text")')
    parser.add_argument('--reps', type=int, default=50, help='timed calls per variant')
    parser.add_argument('--batch', type=int, default=32, help='batch size for throughput')
    parser.add_argument('--startup-runs', type=int, default=3,
                        help='fresh processes per start-up variant (0: skip)')
    parser.add_argument('--threads', type=int, default=1, help='torch CPU threads')
    parser.add_argument('--baseline', default=None,
                        help='MODULE:CLASS of another inferencer to time alongside')
    parser.add_argument('--out', help='write the results as JSON here')
    args = parser.parse_args()
    if args.reps < 3 or args.batch < 1:
        parser.error('--reps must be >= 3 and --batch >= 1')
    return args


def load_class(spec: str):
    module, _, name = spec.partition(':')
    return getattr(importlib.import_module(module), name)


def startup(spec: str, config: str, checkpoint: str) -> Dict[str, float]:
    env = dict(os.environ, CUDA_VISIBLE_DEVICES='')
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, '-c', STARTUP_SNIPPET, spec, config, checkpoint],
                          capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f'start-up of {spec} failed:\n{proc.stderr[-2000:]}')
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result['process_s'] = wall
    return result


def interleaved(fns: Dict[str, Callable[[], None]], reps: int) -> Dict[str, float]:
    """Median seconds per call of each function, calls interleaved."""
    for fn in fns.values():  # warm-up
        fn()
        fn()
    times: Dict[str, List[float]] = {k: [] for k in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    args = parse_args()
    import cv2
    import torch

    torch.set_num_threads(args.threads)
    from mmengine.dataset import pseudo_collate

    from mmfusion.apis import MultiModalInferencer

    item: Dict[str, object] = {}
    for spec in args.inputs:
        modality, _, path = spec.partition('=')
        item[modality] = path
    for spec in args.text:
        modality, sep, text = spec.partition('=')
        item.update({modality: text} if sep and ' ' not in modality else {'text': spec})

    results: Dict[str, object] = dict(config=args.config, threads=args.threads,
                                      reps=args.reps, batch=args.batch)
    # ---- start-up, fresh processes, variants alternating
    variants = {'current': 'mmfusion.apis:MultiModalInferencer'}
    if args.baseline:
        variants['baseline'] = args.baseline
    if args.startup_runs:
        runs: Dict[str, List[dict]] = {k: [] for k in variants}
        for _ in range(args.startup_runs):
            for name, spec in variants.items():
                runs[name].append(startup(spec, args.config, args.checkpoint))
        results['startup'] = {
            name: {key: round(statistics.median(r[key] for r in rs), 3)
                   for key in ('import_s', 'build_s', 'process_s')}
            for name, rs in runs.items()}

    # ---- per call
    inferencers = {'current': MultiModalInferencer(args.config, args.checkpoint, device='cpu')}
    if args.baseline:
        inferencers['baseline'] = load_class(args.baseline)(args.config, args.checkpoint,
                                                            device='cpu')
    current = inferencers['current']
    model = current.model
    packed = pseudo_collate([current.preprocess(item)])
    as_array = {k: (cv2.imread(v) if k == 'image' else v) for k, v in item.items()}
    batch_items = [item] * args.batch

    def forward() -> None:
        with torch.inference_mode():
            model.test_step(packed)

    fns = {'forward (test_step on a packed batch of 1)': forward}
    for name, inf in inferencers.items():
        fns[f'{name} inferencer, paths'] = lambda inf=inf: inf(item)
        fns[f'{name} inferencer, arrays'] = lambda inf=inf: inf(as_array)
    per_call = interleaved(fns, args.reps)
    base = per_call['forward (test_step on a packed batch of 1)']
    results['batch1_ms'] = {k: round(v * 1000, 3) for k, v in per_call.items()}
    results['overhead_vs_forward'] = {k: round(v / base, 3) for k, v in per_call.items()}

    # ---- throughput at batch 1 and at --batch
    fns = {}
    for name, inf in inferencers.items():
        fns[f'{name} batch 1 x{args.batch}'] = (
            lambda inf=inf: [inf(item) for _ in range(args.batch)])
        fns[f'{name} batch {args.batch}'] = (
            lambda inf=inf: inf(batch_items, batch_size=args.batch))
    per_batch = interleaved(fns, max(3, args.reps // 5))
    results['throughput_items_per_s'] = {k: round(args.batch / v, 1)
                                         for k, v in per_batch.items()}

    print(json.dumps(results, indent=2))
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(results, f, indent=2)


if __name__ == '__main__':
    main()
