"""Robustness of a trained model to corrupted, missing and adversarial inputs.

    python tools/analysis_tools/robustness.py CONFIG CKPT --work-dir DIR \\
        [--modalities image audio] [--levels 0 2 4 6 8 10] [--corruptions blur jpeg] \\
        [--attacks fgsm pgd] [--norms linf l2] [--eps 0 0.004 0.008 0.016] \\
        [--l2-eps 0 0.01 0.02] [--steps 10] [--reference OTHER_DIR/robustness.json] \\
        [--skip corruption missing attack] [--num-samples N] [--batch-size B]

On the config's test split (the val split for the quick-starts), batch-wise:

* every corruption of every modality at levels 0..10 (``mmfusion.analysis.corruptions``;
  image/depth: gaussian_noise, blur, occlusion, jpeg, brightness, contrast;
  audio: white_noise, time_dropout; text: typos, word_dropout, word_shuffle;
  vectors: gaussian_noise);
* each modality missing (``mmfusion.analysis.missing``);
* FGSM and PGD, L-inf and L2, on every continuous modality and on the text
  embeddings, at each budget of ``--eps`` (L-inf) / ``--l2-eps`` (L2),
  fractions of the modality's range (``mmfusion.analysis.attacks``).

Writes ``DIR/robustness.json`` (every curve, its relative robustness and,
with ``--reference``, its effective robustness against the same curve of the
reference run; see docs/robustness.md), ``DIR/robustness.png`` (the metric
against the level, one row per modality: corruptions and missing | attacks)
and prints the table (also ``DIR/robustness.txt``).
"""
import argparse
import json
import logging
import os
import os.path as osp
import time
from typing import Dict, List, Optional

import torch
from mmengine.config import DictAction
from mmengine.logging import MMLogger
from terminaltables import AsciiTable

import mmfusion  # noqa: F401  (config and checkpoint compatibility)
from mmfusion.analysis import (
    CORRUPTIONS,
    MISSING_MODES,
    NUM_LEVELS,
    build_evaluator,
    build_loader,
    corrupt_pipeline,
    data_kind,
    drop_modalities,
    effective_robustness,
    evaluate,
    fgsm_attack,
    pgd_attack,
    relative_robustness,
    supports_modality_mask,
)
from mmfusion.analysis.attacks import NORMS
from mmfusion.apis import init_model
from mmfusion.errors import ConfigError, DataError
from mmfusion.utils import add_data_root_argument, load_tool_config, register_all_modules, run_main
from mmfusion.utils.analysis import import_pyplot, save_figure

PARTS = ('corruption', 'missing', 'attack')


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description='Robustness of a trained mmfusion model')
    p.add_argument('config')
    p.add_argument('checkpoint')
    p.add_argument('--work-dir', required=True, help='where robustness.{json,png,txt} go')
    p.add_argument('--modalities', nargs='+', help='default: every modality of the model')
    p.add_argument('--corruptions', nargs='+',
                   help='corruption names to run (default: all that fit each modality)')
    p.add_argument('--levels', nargs='+', type=int, default=list(range(NUM_LEVELS)),
                   help='corruption levels, 0 (clean) .. 10')
    p.add_argument('--attacks', nargs='+', default=['fgsm', 'pgd'], choices=['fgsm', 'pgd'])
    p.add_argument('--norms', nargs='+', default=['linf'], choices=NORMS)
    p.add_argument('--eps', nargs='+', type=float, default=[0, 1 / 255, 2 / 255, 4 / 255, 8 / 255],
                   help='L-inf budgets, fractions of each modality range (8/255 = 8 levels)')
    p.add_argument('--l2-eps', nargs='+', type=float, default=[0, 0.005, 0.01, 0.02, 0.04],
                   help='L2 budgets: root-mean-square change per value, fraction of the range')
    p.add_argument('--steps', type=int, default=10, help='PGD steps')
    p.add_argument('--step-size', type=float, help='PGD step (default 2.5 * eps / steps)')
    p.add_argument('--no-random-start', action='store_true', help='PGD from the clean input')
    p.add_argument('--skip', nargs='+', default=[], choices=PARTS, help='parts to leave out')
    p.add_argument('--missing-mode', choices=MISSING_MODES, default=None,
                   help="how a modality is removed: 'mask' (the model's missing-modality "
                   "path; default where the model has it) or 'zero' (a zero input)")
    p.add_argument('--metric', help='metric to plot and score (default: the first one)')
    p.add_argument('--reference', help='robustness.json of a reference run, for effective '
                   'robustness')
    p.add_argument('--num-samples', type=int, help='only the first N test samples')
    p.add_argument('--batch-size', type=int, help='default: the test dataloader\'s')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--split', default='test', choices=['test', 'val'])
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    add_data_root_argument(p)
    args = p.parse_args(argv)
    if any(not 0 <= lv < NUM_LEVELS for lv in args.levels):
        p.error(f'--levels must be in 0..{NUM_LEVELS - 1}, got {args.levels}')
    if 0 not in args.levels:
        args.levels = [0] + list(args.levels)
    args.levels = sorted(set(args.levels))
    for name in ('eps', 'l2_eps'):
        vals = sorted(set(getattr(args, name)) | {0.0})
        if vals[0] < 0:
            p.error(f'--{name.replace("_", "-")} must be >= 0')
        setattr(args, name, vals)
    return args


class Curves:
    """Every measured curve: name -> dict(kind, modality, x, severity, values, ...)."""

    def __init__(self, metric: str) -> None:
        self.metric = metric
        self.curves: Dict[str, dict] = {}

    def add(self, name: str, kind: str, modality: str, x: List[float], values: List[float],
            x_label: str) -> None:
        top = max(x) if max(x) > 0 else 1.0
        sev = [float(v) / top for v in x]
        entry = dict(kind=kind, modality=modality, x=list(map(float, x)), x_label=x_label,
                     severity=sev, values=values)
        entry.update(relative_robustness(sev, values))
        self.curves[name] = entry


def main(argv: Optional[List[str]] = None) -> dict:
    args = parse_args(argv)
    register_all_modules()
    if not osp.isfile(args.checkpoint):
        raise DataError(f'checkpoint not found: {args.checkpoint}')
    cfg = load_tool_config(args.config, args.work_dir, args.cfg_options, data_root=args.data_root)
    torch.manual_seed(args.seed)
    # the metrics log a table per evaluation; this tool prints its own
    MMLogger.get_current_instance().setLevel(logging.WARNING)
    t_start = time.perf_counter()
    model = init_model(cfg, args.checkpoint)
    loader = build_loader(model.cfg, args.split, args.batch_size, args.num_samples)
    dataset = loader.dataset
    evaluator = build_evaluator(model.cfg, dataset, args.split)
    modalities = args.modalities or list(model.encoders)
    unknown = [m for m in modalities if m not in model.encoders]
    if unknown:
        raise ConfigError(f'--modalities {unknown}: the model encodes only '
                          f'{sorted(model.encoders)}')
    tokenized = set(getattr(model.data_preprocessor, 'tokenizers', {}))

    timing = {}
    t0 = time.perf_counter()
    batches = list(loader)  # the clean raw batches, loaded once
    clean = evaluate(model, None, evaluator, batches=batches)
    timing['clean'] = time.perf_counter() - t0
    metric = args.metric or next(iter(clean))
    if metric not in clean:
        raise ConfigError(f'--metric {metric!r}: the evaluator reports {sorted(clean)}')
    print(f'clean {metric}: {clean[metric]:.2f} ({len(dataset)} samples)')
    curves = Curves(metric)
    missing = {}

    if 'corruption' not in args.skip:
        t0 = time.perf_counter()
        transforms = list(dataset.pipeline.transforms)
        try:
            for m in modalities:
                kind = data_kind(m)
                names = [c for c in CORRUPTIONS[kind]
                         if not args.corruptions or c in args.corruptions]
                for c in names:
                    values = []
                    for level in args.levels:
                        if level == 0:
                            values.append(clean[metric])
                            continue
                        dataset.pipeline.transforms = corrupt_pipeline(
                            transforms, m, c, level, seed=args.seed, kind=kind)
                        values.append(evaluate(model, loader, evaluator)[metric])
                    dataset.pipeline.transforms = transforms
                    curves.add(f'{m}/{c}', 'corruption', m, args.levels, values, 'level')
                    print(f'{m}/{c}: ' + ' '.join(f'{v:.1f}' for v in values))
        finally:
            dataset.pipeline.transforms = transforms
        timing['corruption'] = time.perf_counter() - t0

    missing_mode = args.missing_mode or ('mask' if supports_modality_mask(model) else 'zero')
    if missing_mode == 'mask' and not supports_modality_mask(model):
        raise ConfigError(f'--missing-mode mask: {type(model).__name__} does not take '
                          "modality masks; use --missing-mode zero")
    from mmfusion.models.architectures.dual_encoder import DualEncoder
    if 'missing' not in args.skip and isinstance(model, DualEncoder):
        # retrieval ranks one tower's embeddings against the other's: with one
        # tower's input gone there is nothing to rank, so no metric to report
        print('missing: skipped for a retrieval model (it ranks one modality against the other)')
    elif 'missing' not in args.skip:
        t0 = time.perf_counter()
        for m in modalities:
            missing[m] = evaluate(
                model, None, evaluator, batches=batches,
                processed_fn=lambda p, m=m: drop_modalities(p, [m], missing_mode))[metric]
            print(f'{m} missing ({missing_mode}): {missing[m]:.2f}')
        timing['missing'] = time.perf_counter() - t0

    if 'attack' not in args.skip:
        t0 = time.perf_counter()
        for m in modalities:
            is_text = m in tokenized
            if not is_text and data_kind(m) == 'text':
                continue
            for attack in args.attacks:
                for norm in args.norms:
                    budgets = args.eps if norm == 'linf' else args.l2_eps
                    values = []
                    for eps in budgets:
                        if eps == 0:
                            values.append(clean[metric])
                            continue
                        if attack == 'fgsm':
                            fn = (lambda d, m=m, eps=eps, norm=norm:
                                  fgsm_attack(model, d, [m], eps, norm=norm))
                        else:
                            fn = (lambda d, m=m, eps=eps, norm=norm: pgd_attack(
                                model, d, [m], eps, steps=args.steps, step_size=args.step_size,
                                norm=norm, random_start=not args.no_random_start,
                                seed=args.seed))
                        values.append(evaluate(model, None, evaluator, raw_fn=fn,
                                               batches=batches)[metric])
                    name = f'{m}/{attack}_{norm}'
                    curves.add(name, 'attack', m, budgets, values,
                               'eps (fraction of range)' + (' rms' if norm == 'l2' else ''))
                    print(f'{name}: ' + ' '.join(f'{v:.1f}' for v in values))
        timing['attack'] = time.perf_counter() - t0

    if args.reference:
        add_effective_robustness(curves, args.reference)
    timing['total'] = time.perf_counter() - t_start
    result = dict(config=args.config, checkpoint=args.checkpoint, split=args.split,
                  num_samples=len(dataset), metric=metric, clean=clean, missing=missing,
                  missing_mode=missing_mode,
                  curves=curves.curves, reference=args.reference, wall_time_s=timing)
    os.makedirs(args.work_dir, exist_ok=True)
    with open(osp.join(args.work_dir, 'robustness.json'), 'w', encoding='utf-8') as f:
        json.dump(result, f, indent=2)
    table = robustness_table(result)
    print(table)
    with open(osp.join(args.work_dir, 'robustness.txt'), 'w', encoding='utf-8') as f:
        f.write(table + '\n')
    png = plot(result, osp.join(args.work_dir, 'robustness.png'),
               title=osp.splitext(osp.basename(args.config))[0])
    print(f'wrote {osp.join(args.work_dir, "robustness.json")}, {png}')
    print('wall time (s): ' + ', '.join(f'{k} {v:.1f}' for k, v in timing.items()))
    return result


def add_effective_robustness(curves: Curves, reference: str) -> None:
    """Effective robustness of every curve that the reference run measured too."""
    try:
        with open(reference, encoding='utf-8') as f:
            ref = json.load(f)
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f'--reference {reference}: not a readable robustness.json ({exc})')
    if ref.get('metric') != curves.metric:
        raise DataError(f'--reference {reference} scores {ref.get("metric")!r}, this run '
                        f'{curves.metric!r}; use the same --metric')
    for name, c in curves.curves.items():
        r = ref.get('curves', {}).get(name)
        if r is None:
            continue
        if r['x'] != c['x']:
            print(f'{name}: the reference measured other levels ({r["x"]}); no effective '
                  'robustness')
            continue
        c.update(effective_robustness(c['severity'], c['values'], r['severity'], r['values']))


def robustness_table(result: dict) -> str:
    metric = result['metric']
    rows = [['curve', 'x', f'{metric} at each x', 'AUC', 'RR', 'ER']]
    for name, c in result['curves'].items():
        xs = ' '.join(f'{x:g}' if c['kind'] == 'corruption' else f'{x:.3g}' for x in c['x'])
        vals = ' '.join(f'{v:.1f}' for v in c['values'])
        er = f'{c["er"]:+.3f}' if 'er' in c else '-'
        rows.append([name, xs, vals, f'{c["auc"]:.2f}', f'{c["rr"]:.3f}', er])
    for m, v in result['missing'].items():
        clean = result['clean'][metric]
        rows.append([f'{m}/missing', '-', f'{v:.1f}', '-', f'{v / clean:.3f}' if clean else '-',
                     '-'])
    return AsciiTable(rows, title=f'Robustness ({result["num_samples"]} samples, clean '
                      f'{metric} {result["clean"][metric]:.2f})').table


def plot(result: dict, out_file: str, title: str = '') -> str:
    """One row per modality: corruptions (+ missing) against the level, and
    attacks against eps."""
    plt = import_pyplot()
    mods = sorted({c['modality'] for c in result['curves'].values()} | set(result['missing']))
    fig, axes = plt.subplots(len(mods), 2, figsize=(11, 3.4 * len(mods)), squeeze=False)
    metric, clean = result['metric'], result['clean'][result['metric']]
    for row, m in zip(axes, mods):
        for ax, kind in zip(row, ('corruption', 'attack')):
            curves = {n: c for n, c in result['curves'].items()
                      if c['modality'] == m and c['kind'] == kind}
            for n, c in curves.items():
                label = n.split('/', 1)[1] + f' (RR {c["rr"]:.2f}'
                label += f', ER {c["er"]:+.2f})' if 'er' in c else ')'
                ax.plot(c['x'], c['values'], marker='o', ms=3, label=label)
            if kind == 'corruption' and m in result['missing']:
                ax.axhline(result['missing'][m], color='k', ls='--', lw=1,
                           label=f'{m} missing ({result["missing"][m]:.1f})')
            ax.axhline(clean, color='grey', ls=':', lw=1)
            ax.set_title(f'{m}: {"corruptions" if kind == "corruption" else "attacks"}')
            ax.set_xlabel('level' if kind == 'corruption' else 'eps (fraction of range)')
            ax.set_ylabel(metric)
            if curves or (kind == 'corruption' and m in result['missing']):
                ax.legend(fontsize=7)
            ax.grid(alpha=0.3)
    fig.suptitle(f'{title}: {metric} (clean {clean:.1f}, {result["num_samples"]} samples)')
    fig.tight_layout()
    return save_figure(fig, out_file)


if __name__ == '__main__':
    run_main(main)
