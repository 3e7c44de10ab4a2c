"""Train several configs over several seeds and evaluate each model with every
modality, and with each modality removed at test time.

    python tools/analysis_tools/modality_robustness_sweep.py \\
        plain=configs/classification/mmshapes_av.py \\
        dropout=configs/classification/mmshapes_av_modality_dropout.py \\
        ogm_ge=configs/classification/mmshapes_av_ogm_ge.py \\
        --seeds 0 1 2 --remove image audio --epochs 12 --jobs 9 \\
        --work-dir work_dirs/modality_sweep

Each run is ``tools/train.py`` (seed and, with ``--epochs``, a shortened
schedule: ``train_cfg.max_epochs`` and the end of the last scheduler; no
validation during training). Runs go ``--jobs`` at a time. Then every last
checkpoint is evaluated on the test set once with every modality and once
per ``--remove`` modality. That evaluation runs in this process: the test
pipeline runs once per sample, and removing a modality is done on the packed
sample exactly as ``RemoveModality`` before ``PackMultiModalInputs`` does
(``None`` input, ``modality_mask`` False), which is what ``tools/test.py
--remove-modality`` evaluates; computing the log-mel features once instead of
27 times is what makes the sweep affordable on a few CPU cores. Writes
``results.json`` (method -> seed -> setting -> metric) and ``results.md`` (a
table, with mean and standard deviation over seeds) into the work dir; a run
already trained there is reused.
"""
import argparse
import json
import os
import os.path as osp
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, Optional

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
from mmfusion.utils import register_all_modules  # noqa: E402

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('methods', nargs='+', metavar='NAME=CONFIG',
                        help='a name for the table and the config that trains it')
    parser.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2])
    parser.add_argument('--remove', nargs='*', default=['image', 'audio'],
                        help='modalities to remove at test time, one evaluation each')
    parser.add_argument('--epochs', type=int, default=None,
                        help='shorten every schedule to this many epochs')
    parser.add_argument('--metric', default='accuracy/top1')
    parser.add_argument('--jobs', type=int, default=1, help='runs trained at the same time')
    parser.add_argument('--work-dir', default='work_dirs/modality_sweep')
    parser.add_argument('--cfg-options', nargs='*', default=[],
                        help='extra key=value overrides for every training run')
    args = parser.parse_args()
    for spec in args.methods:
        if '=' not in spec:
            parser.error(f'expected NAME=CONFIG, got {spec!r}')
    return args


def run(cmd: List[str], log: str) -> None:
    env = dict(os.environ)
    env['PYTHONPATH'] = ROOT + os.pathsep + env.get('PYTHONPATH', '')
    with open(log, 'w') as f:
        proc = subprocess.run(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, env=env)
    if proc.returncode:
        raise RuntimeError(f'{" ".join(cmd)} failed (exit {proc.returncode}); see {log}')


def schedule_options(config: str, epochs: int) -> List[str]:
    """Overrides that shorten the schedule: max_epochs and the end of the last
    epoch-based scheduler."""
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(ROOT, config))
    opts = [f'train_cfg.max_epochs={epochs}', f'train_cfg.val_interval={epochs + 1}']
    schedulers = cfg.get('param_scheduler') or []
    if isinstance(schedulers, dict):
        schedulers = [schedulers]
    if schedulers and schedulers[-1].get('end') is not None:
        opts.append(f'param_scheduler.{len(schedulers) - 1}.end={epochs}')
    return opts


def train_one(name: str, config: str, seed: int, args: argparse.Namespace) -> str:
    """Train (unless done) and return the last checkpoint."""
    out_dir = osp.join(args.work_dir, f'{name}_seed{seed}')
    os.makedirs(out_dir, exist_ok=True)
    epochs = args.epochs
    opts = [f'randomness.seed={seed}'] + list(args.cfg_options)
    if epochs:
        opts += schedule_options(config, epochs)
    last_file = osp.join(out_dir, 'last_checkpoint')
    if not osp.isfile(last_file):
        run([sys.executable, 'tools/train.py', config, '--work-dir', out_dir,
             '--cfg-options', *opts], osp.join(out_dir, 'train.out'))
    print(f'{name} seed {seed}: trained', flush=True)
    with open(last_file) as f:
        return f.read().strip()


def packed_test_set(config: str) -> tuple:
    """The test set through the config's test pipeline, once: (packed
    samples, the dataset's meta information)."""
    from mmengine.config import Config

    from mmfusion.registry import DATASETS
    cfg = Config.fromfile(osp.join(ROOT, config))
    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    return [dataset[i] for i in range(len(dataset))], dataset.metainfo


def without(sample: dict, modality: Optional[str]) -> dict:
    """The packed sample with ``modality`` removed, as RemoveModality + Pack give it."""
    if modality is None:
        return sample
    data_sample = sample['data_samples'].clone()
    mask = dict(data_sample.metainfo.get('modality_mask', {}))
    mask[modality] = False
    data_sample.set_metainfo(dict(modality_mask=mask))
    return dict(inputs={**sample['inputs'], modality: None}, data_samples=data_sample)


def evaluate(config: str, checkpoint: str, samples: list, meta: dict, removals: List[Optional[str]],
             metric: str, batch_size: int = 100) -> Dict[str, float]:
    """``{setting: metric}`` of one checkpoint on the packed test samples."""
    import torch
    from mmengine.config import Config
    from mmengine.dataset import pseudo_collate
    from mmengine.evaluator import Evaluator
    from mmengine.runner import load_checkpoint

    from mmfusion.registry import MODELS
    cfg = Config.fromfile(osp.join(ROOT, config))
    model = MODELS.build(cfg.model)
    load_checkpoint(model, checkpoint, map_location='cpu', logger='silent')
    model.eval()
    results = {}
    for removed in removals:
        evaluator = Evaluator(cfg.test_evaluator)
        evaluator.dataset_meta = meta
        for start in range(0, len(samples), batch_size):
            batch = pseudo_collate([without(s, removed)
                                    for s in samples[start:start + batch_size]])
            with torch.no_grad():
                outputs = model.test_step(batch)
            evaluator.process(outputs, batch)
        metrics = evaluator.evaluate(len(samples))
        results['all' if removed is None else f'no_{removed}'] = float(metrics[metric])
    return results


def table(results: Dict[str, Dict[int, Optional[Dict[str, float]]]], settings: List[str],
          metric: str) -> str:
    head = ['method', 'seed'] + [f'{metric} ({s})' for s in settings]
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for name, by_seed in results.items():
        done = {seed: r for seed, r in by_seed.items() if r}
        for seed, r in done.items():
            lines.append(f'| {name} | {seed} | ' + ' | '.join(f'{r[s]:.2f}' for s in settings)
                         + ' |')
        if len(done) > 1:
            cells = []
            for s in settings:
                vals = [r[s] for r in done.values()]
                cells.append(f'{statistics.mean(vals):.2f} ± {statistics.stdev(vals):.2f}')
            lines.append(f'| {name} | mean ± std | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def _test_pipeline(config: str) -> list:
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(ROOT, config))
    return [dict(t) for t in cfg.test_dataloader.dataset.pipeline] + [
        dict(cfg.test_dataloader.dataset, pipeline=None)]


def main() -> None:
    args = parse_args()
    os.makedirs(args.work_dir, exist_ok=True)
    methods = dict(spec.split('=', 1) for spec in args.methods)
    jobs = [(name, config, seed) for name, config in methods.items() for seed in args.seeds]
    checkpoints = {}
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = {job: pool.submit(train_one, *job, args) for job in jobs}
        for job, future in futures.items():
            try:
                checkpoints[job] = future.result()
            except RuntimeError as e:
                print(e, file=sys.stderr)
    import torch
    torch.manual_seed(0)
    register_all_modules()
    results: Dict[str, Dict[int, Optional[Dict[str, float]]]] = {n: {} for n in methods}
    samples = {}
    removals = [None] + list(args.remove)
    for (name, config, seed) in jobs:
        if (name, config, seed) not in checkpoints:
            results[name][seed] = None
            continue
        # methods share one test pipeline unless their configs say otherwise
        key = json.dumps(_test_pipeline(config), sort_keys=True, default=str)
        if key not in samples:
            samples[key] = packed_test_set(config)
        results[name][seed] = evaluate(config, checkpoints[(name, config, seed)],
                                       *samples[key], removals, args.metric)
        print(f'{name} seed {seed}: {results[name][seed]}', flush=True)
    settings = ['all'] + [f'no_{m}' for m in args.remove]
    with open(osp.join(args.work_dir, 'results.json'), 'w') as f:
        json.dump(results, f, indent=2)
    md = table(results, settings, args.metric)
    with open(osp.join(args.work_dir, 'results.md'), 'w') as f:
        f.write(md + '\n')
    print(md)


if __name__ == '__main__':
    main()
