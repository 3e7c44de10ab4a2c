"""Evaluate a checkpoint: ``python tools/test.py CONFIG CHECKPOINT [options]``.

Prints the metrics as a table and writes them as a flat JSON dict
(metric name -> number) to ``<work-dir>/metrics.json``. Config and data
mistakes are reported as in ``tools/train.py``. ``--show-dir DIR`` also draws
every test sample (ground truth | prediction, the text prompt, the depth map)
into ``DIR/<image stem>[_<prompt>].png``, ``DIR`` relative to the work dir.
``--out FILE.pkl`` also pickles the predictions, a list with one dict per
test sample in dataset order (the data sample's fields: ``pred_answer``,
``pred_instances``, ``gt_*``, metainfo such as ``question_id`` or
``img_id``), as mmdet's and mmpretrain's ``--out`` do; ``FILE`` is relative
to the current directory. Official results files (VQAv2 answers, COCO
detections) come from the metrics, e.g. ``--cfg-options
test_evaluator.outfile_prefix=work_dirs/vqa/results`` (add
``test_evaluator.format_only=True`` for a split without annotations); see
docs/result_files.md.
"""
import argparse
import json
import os
import os.path as osp

from mmengine.config import DictAction
from mmengine.dist import is_main_process
from mmengine.runner import Runner
from terminaltables import AsciiTable

import mmfusion  # noqa: F401  (config and checkpoint compatibility, before any config is read)
from mmfusion.apis.model import resolve_vocabularies_for_checkpoint
from mmfusion.datasets.transforms.modality import with_modalities_removed
from mmfusion.engine.checkpoint_fit import checkpoint_fit_hook
from mmfusion.errors import CheckpointError, ConfigError
from mmfusion.utils import (
    add_data_root_argument,
    check_modalities,
    explain_config_errors,
    finish_distributed,
    load_tool_config,
    register_all_modules,
    run_main,
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test (evaluate) an mmfusion model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='where logs and metrics.json go '
                        '(default: ./work_dirs/<config name>)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, e.g. test_dataloader.batch_size=32')
    parser.add_argument('--out', help='also dump the predictions (one dict per test sample) to '
                        'this pickle file (.pkl or .pickle), relative to the current directory')
    parser.add_argument('--show-dir', help='draw each test sample (ground truth | prediction) '
                        'into PNGs in this folder (relative to the work dir, or absolute)')
    parser.add_argument('--show-score-thr', type=float, default=0.3,
                        help='with --show-dir, leave out predicted boxes scoring at most this')
    add_data_root_argument(parser)
    parser.add_argument('--remove-modality', nargs='+', metavar='MODALITY', default=[],
                        help='remove these modalities (e.g. image) from every test sample, '
                             'to evaluate a model with a modality missing (see '
                             'docs/missing_modalities.md)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if args.out is not None and not args.out.endswith(('.pkl', '.pickle')):
        parser.error(f'--out must name a pickle file ending in .pkl or .pickle, got {args.out!r}')
    if not 0 <= args.show_score_thr <= 1:
        parser.error(f'--show-score-thr must be in [0, 1], got {args.show_score_thr}')
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def metrics_table(metrics: dict) -> str:
    rows = [['metric', 'value']]
    rows += [[k, f'{v:.4f}' if isinstance(v, float) else str(v)] for k, v in metrics.items()]
    return AsciiTable(rows, title='Test results').table


def add_visualization_hook(cfg, show_dir: str, score_thr: float) -> None:
    """Make the test loop draw its samples into ``show_dir``
    (:class:`~mmfusion.visualization.MultiModalVisualizationHook`)."""
    cfg.custom_hooks = list(cfg.get('custom_hooks') or []) + [
        dict(type='MultiModalVisualizationHook', out_dir=show_dir, score_thr=score_thr)]


def add_progress_hook(cfg) -> None:
    """Show a progress bar over the test set (:class:`~mmfusion.engine.EvalProgressHook`;
    drawn only on a terminal, so redirected output stays readable)."""
    hooks = list(cfg.get('custom_hooks') or [])
    if not any(h.get('type') == 'EvalProgressHook' for h in hooks):
        cfg.custom_hooks = hooks + [dict(type='EvalProgressHook', phases=['test'])]


def add_dump_results(cfg, out: str) -> None:
    """Append MMEngine's :class:`~mmengine.evaluator.DumpResults` to the test
    evaluator, so that the test loop also pickles its predictions to ``out``.

    ``test_evaluator`` may be one metric config, a list of them or an
    ``Evaluator`` config with ``metrics``; the dump comes last, after the
    metrics, and adds no metric.
    """
    dump_metric = dict(type='DumpResults', out_file_path=out)
    evaluator = cfg.get('test_evaluator')
    if evaluator is None:
        raise ConfigError(f'--out {out}: the config has no test_evaluator to add the dump to')
    if isinstance(evaluator, dict) and 'metrics' in evaluator:
        evaluator.metrics = list(evaluator.metrics) + [dump_metric]
    elif isinstance(evaluator, dict):
        cfg.test_evaluator = [evaluator, dump_metric]
    else:
        cfg.test_evaluator = list(evaluator) + [dump_metric]


def remove_test_modalities(cfg, modalities) -> None:
    """Remove ``modalities`` from every test sample (``--remove-modality``)."""
    dataset = cfg.test_dataloader.get('dataset', {})
    if 'pipeline' not in dataset:
        raise ConfigError('--remove-modality: test_dataloader.dataset has no pipeline to '
                          'remove a modality in')
    dataset.pipeline = with_modalities_removed(dataset.pipeline, modalities)


def main() -> None:
    args = parse_args()
    register_all_modules()
    if not osp.isfile(args.checkpoint):
        raise CheckpointError(f'checkpoint not found: {args.checkpoint}')
    cfg = load_tool_config(args.config, args.work_dir, args.cfg_options, args.launcher,
                           data_root=args.data_root)
    cfg.load_from = args.checkpoint
    cfg.resume = False
    if args.show_dir:
        add_visualization_hook(cfg, args.show_dir, args.show_score_thr)
    if args.out:
        add_dump_results(cfg, args.out)
    add_progress_hook(cfg)
    if args.remove_modality:
        remove_test_modalities(cfg, args.remove_modality)
    check_modalities(cfg, ('test_dataloader',))

    with explain_config_errors(cfg):
        # the vocabularies the checkpoint was trained with; no training data needed
        resolve_vocabularies_for_checkpoint(cfg, args.checkpoint, args.config)
        # a checkpoint that does not fit the model stops here, before any metric
        checkpoint_fit_hook(cfg, strict=True)
        runner = Runner.from_cfg(cfg)
        metrics = runner.test()
    del runner  # before the process group goes: see finish_distributed
    if is_main_process():
        flat = {k: (float(v) if hasattr(v, '__float__') else v) for k, v in metrics.items()}
        print(metrics_table(flat))
        os.makedirs(cfg.work_dir, exist_ok=True)
        out = osp.join(cfg.work_dir, 'metrics.json')
        with open(out, 'w', encoding='utf-8') as f:
            json.dump(flat, f, indent=2)
        print(f'metrics written to {out}')
    finish_distributed()


if __name__ == '__main__':
    run_main(main)
