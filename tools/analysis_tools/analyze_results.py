"""Draw the best and the worst predictions of a test run.

    python tools/analysis_tools/analyze_results.py CONFIG RESULTS.pkl --out-dir DIR \\
        [--topk 10] [--cfg-options ...]

``RESULTS.pkl`` is what ``tools/test.py CONFIG CHECKPOINT --out RESULTS.pkl``
writes (MMEngine's ``DumpResults``): one prediction dict per sample of the
config's test set, in its order. Each sample is ranked

* classification: by the predicted probability of its true class; the
  ``--topk`` correct samples with the highest go to ``DIR/success``, the
  ``--topk`` wrong ones with the lowest to ``DIR/fail``;
* VQA: by the official VQA accuracy of the predicted answer, then by the
  model's confidence in it; ``DIR/success`` gets the confident right
  answers, ``DIR/fail`` the confident wrong ones (accuracy 0 first).

Each PNG shows what the model saw, after the test pipeline: the image, a
depth map, the log-mel spectrogram of the audio, and the question or text
with the true and the predicted answer or class. These are classification
samples (a picture and a caption), so a matplotlib figure draws them; the
library's ``MultiModalVisualizer`` is for boxes and masks.
"""
import argparse
import os
import os.path as osp
import textwrap
from collections import Counter
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.config import Config, DictAction
from terminaltables import AsciiTable

import mmfusion  # noqa: F401  (config compatibility, before any config is read)
from mmfusion.errors import ConfigError, DataError
from mmfusion.evaluation.functional import normalize_answer, vqa_accuracy
from mmfusion.registry import DATASETS
from mmfusion.utils import (
    add_data_root_argument,
    explain_config_errors,
    read_tool_config,
    register_all_modules,
    run_main,
)
from mmfusion.utils.analysis import import_pyplot, load_results, save_figure

TEXT_KEYS = ('question', 'text')


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Draw the best and worst predictions')
    parser.add_argument('config', help='the config the predictions were made with')
    parser.add_argument('results', help='predictions pickle of tools/test.py --out')
    parser.add_argument('--out-dir', required=True,
                        help='writes DIR/success/*.png and DIR/fail/*.png')
    parser.add_argument('--topk', type=int, default=10,
                        help='how many samples of each kind to draw (default: 10)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries')
    add_data_root_argument(parser)
    args = parser.parse_args()
    if args.topk < 1:
        parser.error(f'--topk must be at least 1, got {args.topk}')
    return args


# --------------------------------------------------------------------------
# Scoring


def _scalar(value: Any) -> int:
    if torch.is_tensor(value) or isinstance(value, np.ndarray):
        value = value.reshape(-1)[0]
    return int(value)


def _scores(value: Any) -> np.ndarray:
    if torch.is_tensor(value):
        return value.detach().float().cpu().numpy().reshape(-1)
    return np.asarray(value, dtype=float).reshape(-1)


def score_classification(result: dict, index: int, path: str) -> dict:
    """Correctness and the predicted probability of the true class."""
    if 'pred_score' not in result:
        raise DataError(f'{path}, sample {index}: no pred_score; analyze_results ranks by the '
                        'score of the true class')
    gt, pred = _scalar(result['gt_label']), _scalar(result['pred_label'])
    scores = _scores(result['pred_score'])
    if not 0 <= gt < len(scores):
        raise DataError(f'{path}, sample {index}: gt_label {gt} but pred_score has '
                        f'{len(scores)} classes')
    return dict(correct=gt == pred, gt=gt, pred=pred, gt_score=float(scores[gt]),
                pred_score=float(scores[pred]) if 0 <= pred < len(scores) else float('nan'))


def score_vqa(result: dict) -> dict:
    """Official VQA accuracy of the predicted answer and the model's confidence in it."""
    answers = result.get('gt_answers', result.get('gt_answer'))
    answers = [answers] if isinstance(answers, str) else [str(a) for a in answers]
    pred = str(result['pred_answer'])
    top = result.get('pred_topk_scores')
    confidence = float(_scores(top)[0]) if top is not None and len(top) else float('nan')
    return dict(accuracy=vqa_accuracy(pred, answers), pred=pred, answers=answers,
                confidence=confidence,
                majority=Counter(normalize_answer(a) for a in answers).most_common(1)[0][0])


def rank(scored: List[dict], task: str, topk: int) -> Tuple[List[int], List[int]]:
    """Indices of the ``topk`` successes (best first) and failures (worst first)."""
    order = range(len(scored))
    if task == 'cls':
        right = [i for i in order if scored[i]['correct']]
        wrong = [i for i in order if not scored[i]['correct']]
        right.sort(key=lambda i: -scored[i]['gt_score'])
        wrong.sort(key=lambda i: scored[i]['gt_score'])
    else:
        def confidence(i: int) -> float:
            value = scored[i]['confidence']
            return 0.0 if np.isnan(value) else value
        right = [i for i in order if scored[i]['accuracy'] >= 1.0]
        wrong = [i for i in order if scored[i]['accuracy'] < 1.0]
        right.sort(key=lambda i: -confidence(i))
        # wrong first, then half-right; the more confident, the worse
        wrong.sort(key=lambda i: (scored[i]['accuracy'], -confidence(i)))
    return right[:topk], wrong[:topk]


# --------------------------------------------------------------------------
# Drawing


def build_test_set(cfg: Config) -> Any:
    for key in ('test_dataloader', 'val_dataloader'):
        loader = cfg.get(key)
        if isinstance(loader, dict) and isinstance(loader.get('dataset'), dict):
            with explain_config_errors(cfg):
                return DATASETS.build(loader['dataset'])
    raise ConfigError('the config has no test_dataloader.dataset (or val_dataloader.dataset) '
                      'to take the samples from')


def check_alignment(results: Sequence[dict], dataset: Any, path: str) -> None:
    """The results must follow the test set: same length, same image/question."""
    if len(results) != len(dataset):
        raise DataError(f'{path} has {len(results)} predictions but the config\'s test set has '
                        f'{len(dataset)} samples; were they made with this config?')
    for index in (0, len(results) - 1):
        info = dataset.get_data_info(index)
        for key in ('img_path',) + TEXT_KEYS:
            if key in results[index] and key in info and results[index][key] != info[key]:
                raise DataError(f'{path}, sample {index}: {key} {results[index][key]!r} but the '
                                f'test set has {info[key]!r}; the predictions do not follow '
                                'the config\'s test set')


def _panels(inputs: Dict[str, Any]) -> List[Tuple[str, np.ndarray, Optional[str]]]:
    """``(title, array, colour map)`` for each modality that can be drawn."""
    panels = []
    # pictures first, then the other signals
    order = sorted(inputs, key=lambda n: (n not in ('image', 'depth'), n != 'image'))
    for name in order:
        value = inputs[name]
        if not torch.is_tensor(value) or value.dim() < 2:
            continue  # raw text or token ids: the text is written instead
        array = value.detach().float().cpu().numpy()
        if array.ndim == 3 and array.shape[0] == 3:
            # images leave the pipeline as BGR bytes
            panels.append((name, array[::-1].transpose(1, 2, 0).clip(0, 255) / 255.0, None))
        elif array.ndim == 3 and array.shape[0] == 1:
            cmap = 'magma' if name == 'audio' else 'viridis'
            panels.append((name if name != 'audio' else 'audio (log-mel)', array[0], cmap))
        elif array.ndim == 2:
            panels.append((name, array, 'viridis'))
    return panels


def caption(result: dict, info: dict, scored: dict, task: str, classes: Sequence[str]) -> str:
    lines = []
    for key in TEXT_KEYS:
        text = result.get(key, info.get(key))
        if isinstance(text, str) and text:
            lines.append(('Q: ' if key == 'question' else 'text: ') + text)
            break
    if task == 'cls':
        def name(i: int) -> str:
            return classes[i] if 0 <= i < len(classes) else str(i)
        lines.append(f'truth: {name(scored["gt"])} (p={scored["gt_score"]:.3f})')
        lines.append(f'prediction: {name(scored["pred"])} (p={scored["pred_score"]:.3f})')
    else:
        counts = Counter(scored['answers'])
        lines.append('annotators: ' + ', '.join(f'{a} x{n}' for a, n in counts.most_common()))
        lines.append(f'prediction: {scored["pred"]} (p={scored["confidence"]:.3f}, '
                     f'VQA acc {scored["accuracy"]:.2f})')
    return '\n'.join(textwrap.fill(line, 46) for line in lines)


def draw(inputs: Dict[str, Any], text: str, out_file: str, good: bool) -> str:
    plt = import_pyplot()
    panels = _panels(inputs)
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(2.4 * max(1, len(panels)), 3.1),
                             squeeze=False)
    for ax, (title, array, cmap) in zip(axes[0], panels):
        ax.imshow(array, cmap=cmap, aspect='auto' if cmap == 'magma' else 'equal',
                  interpolation='nearest', origin='lower' if cmap == 'magma' else 'upper')
        ax.set_title(title, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    if not panels:
        axes[0, 0].axis('off')
    fig.text(0.02, 0.0, text, fontsize=8, va='top', ha='left', family='monospace',
             color='darkgreen' if good else 'darkred')
    return save_figure(fig, out_file, dpi=80)


def main() -> None:
    args = parse_args()
    register_all_modules()
    results = load_results(args.results)
    cfg = read_tool_config(args.config, args.cfg_options, args.data_root)
    first = results[0]
    if 'gt_label' in first and 'pred_label' in first:
        task = 'cls'
        scored = [score_classification(r, i, args.results) for i, r in enumerate(results)]
    elif 'pred_answer' in first and ('gt_answers' in first or 'gt_answer' in first):
        task = 'vqa'
        scored = [score_vqa(r) for r in results]
    else:
        raise DataError(f'{args.results}: a result has neither gt_label and pred_label nor '
                        f'gt_answers and pred_answer; its keys: {sorted(first)}')
    dataset = build_test_set(cfg)
    check_alignment(results, dataset, args.results)
    classes = [str(c) for c in (dataset.metainfo.get('classes') or ())]

    success, fail = rank(scored, task, args.topk)
    rows = [['kind', 'rank', 'sample', 'truth', 'prediction', 'score', 'file']]
    for kind, indices in (('success', success), ('fail', fail)):
        folder = osp.join(args.out_dir, kind)
        os.makedirs(folder, exist_ok=True)
        for position, index in enumerate(indices, 1):
            item = dataset[index]
            info = dataset.get_data_info(index)
            stem = osp.splitext(osp.basename(str(info.get('img_path', index))))[0]
            out_file = osp.join(folder, f'{position:02d}_{index:05d}_{stem}.png')
            draw(item['inputs'], caption(results[index], info, scored[index], task, classes),
                 out_file, kind == 'success')
            s = scored[index]
            if task == 'cls':
                truth = classes[s['gt']] if s['gt'] < len(classes) else str(s['gt'])
                pred = classes[s['pred']] if 0 <= s['pred'] < len(classes) else str(s['pred'])
                score = f'{s["gt_score"]:.3f}'
            else:
                truth, pred, score = s['majority'], s['pred'], f'{s["accuracy"]:.2f}'
            rows.append([kind, str(position), str(index), truth, pred, score,
                         osp.relpath(out_file, args.out_dir)])
    what = 'p(true class)' if task == 'cls' else 'VQA acc'
    print(AsciiTable(rows, title=f'{len(success)} successes, {len(fail)} failures; score: '
                                 f'{what}').table)
    print(f'drawings written to {osp.join(args.out_dir, "success")} and '
          f'{osp.join(args.out_dir, "fail")}')


if __name__ == '__main__':
    run_main(main)
