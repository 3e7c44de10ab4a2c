"""Confusion matrix of saved predictions.

    python tools/analysis_tools/confusion_matrix.py CONFIG RESULTS.pkl --out DIR \\
        [--show-labels] [--max-classes 30] [--title T]

``RESULTS.pkl`` is the list of per-sample prediction dicts that
``tools/test.py CONFIG CHECKPOINT --out RESULTS.pkl`` writes (MMEngine's
``DumpResults``). Classification results carry ``gt_label``/``pred_label``;
the class names come from the dataset's metainfo (``classes``) of the
config's test set. VQA results carry ``gt_answers``/``pred_answer``: the
true answer of a question is its annotators' most frequent answer (after the
official normalisation), and the classes are the answers that occur, most
frequent first; beyond ``--max-classes`` the rarer ones are pooled as
``(other)``.

Writes ``DIR/confusion_matrix.png`` (rows: truth, columns: prediction,
colour: the share of the row) and ``DIR/confusion_matrix.json`` (class
names and counts), and prints per-class recall and precision (and, for a few
classes, the counts) as tables.
"""
import argparse
import json
import os
import os.path as osp
from collections import Counter
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.config import Config, DictAction
from terminaltables import AsciiTable

import mmfusion  # noqa: F401  (config compatibility, before any config is read)
from mmfusion.errors import ConfigError, DataError
from mmfusion.evaluation.functional import confusion_matrix, normalize_answer
from mmfusion.registry import DATASETS
from mmfusion.utils import (
    add_data_root_argument,
    explain_config_errors,
    read_tool_config,
    register_all_modules,
    run_main,
)
from mmfusion.utils.analysis import import_pyplot, load_results, save_figure

OTHER = '(other)'
FULL_TABLE_MAX_CLASSES = 10  # wider count tables do not fit a terminal


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Confusion matrix of saved predictions')
    parser.add_argument('config', help='the config the predictions were made with')
    parser.add_argument('results', help='predictions pickle of tools/test.py --out')
    parser.add_argument('--out', required=True,
                        help='folder for confusion_matrix.png and confusion_matrix.json')
    parser.add_argument('--show-labels', '--include-values', action='store_true',
                        help='write the count into every cell of the plot')
    parser.add_argument('--max-classes', type=int, default=30,
                        help='VQA: keep this many answers, pool the rest as "(other)"')
    parser.add_argument('--title', default=None, help='title of the plot')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries')
    add_data_root_argument(parser)
    args = parser.parse_args()
    if args.max_classes < 2:
        parser.error(f'--max-classes must be at least 2, got {args.max_classes}')
    return args


# --------------------------------------------------------------------------
# Results -> (true, predicted) indices


def dataset_classes(cfg: Config) -> Optional[List[str]]:
    """``classes`` of the config's test set (or val set), if it has any."""
    for key in ('test_dataloader', 'val_dataloader'):
        loader = cfg.get(key)
        if isinstance(loader, dict) and isinstance(loader.get('dataset'), dict):
            with explain_config_errors(cfg):
                # metainfo is known without reading the annotations
                dataset = DATASETS.build(dict(loader['dataset'], lazy_init=True))
            classes = dataset.metainfo.get('classes')
            return [str(c) for c in classes] if classes else None
    return None


def _index(value: Any, what: str, sample: int, path: str) -> int:
    """A single class index from an int, a 0-d/1-element tensor or array."""
    if torch.is_tensor(value) or isinstance(value, np.ndarray):
        flat = value.reshape(-1).tolist()
        if len(flat) != 1:
            raise DataError(f'{path}, sample {sample}: {what} holds {len(flat)} labels; the '
                            'confusion matrix is for single-label classification')
        value = flat[0]
    if isinstance(value, (list, tuple)) and len(value) == 1:
        value = value[0]
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise DataError(f'{path}, sample {sample}: {what} is not a class index: '
                        f'{value!r}') from exc


def task_of(results: Sequence[dict], path: str) -> str:
    """``'cls'`` or ``'vqa'``, from the fields of the first result."""
    first = results[0]
    if 'gt_label' in first and 'pred_label' in first:
        return 'cls'
    if 'pred_answer' in first and ('gt_answers' in first or 'gt_answer' in first):
        return 'vqa'
    raise DataError(f'{path}: a result has neither gt_label and pred_label (classification) '
                    f'nor gt_answers and pred_answer (VQA); its keys: {sorted(first)}')


def majority_answer(result: dict) -> str:
    """A question's true answer: the most frequent normalised annotator answer."""
    answers = result.get('gt_answers', result.get('gt_answer'))
    if isinstance(answers, str):
        answers = [answers]
    normalized = [normalize_answer(str(a)) for a in answers]
    return Counter(normalized).most_common(1)[0][0]


def classification_pairs(results: Sequence[dict], classes: Optional[List[str]],
                         path: str) -> Tuple[List[int], List[int], List[str]]:
    gts = [_index(r['gt_label'], 'gt_label', i, path) for i, r in enumerate(results)]
    preds = [_index(r['pred_label'], 'pred_label', i, path) for i, r in enumerate(results)]
    if classes is None:
        num = max(gts + preds) + 1
        score = results[0].get('pred_score')
        if score is not None:
            num = max(num, len(score))
        classes = [str(i) for i in range(num)]
    bad = [v for v in gts + preds if not 0 <= v < len(classes)]
    if bad:
        raise DataError(f'{path}: label {bad[0]} is outside the {len(classes)} classes of the '
                        'config\'s dataset; were the predictions made with another config?')
    return gts, preds, classes


def vqa_pairs(results: Sequence[dict], max_classes: int
              ) -> Tuple[List[int], List[int], List[str]]:
    truth = [majority_answer(r) for r in results]
    preds = [normalize_answer(str(r['pred_answer'])) for r in results]
    # most frequent true answers first, then answers only ever predicted
    counts = Counter(truth)
    ordered = [a for a, _ in counts.most_common()]
    ordered += sorted(set(preds) - set(counts), key=lambda a: -preds.count(a))
    if len(ordered) > max_classes:
        ordered = ordered[:max_classes - 1] + [OTHER]
    index = {a: i for i, a in enumerate(ordered)}
    other = index.get(OTHER)
    return ([index.get(a, other) for a in truth], [index.get(a, other) for a in preds],
            ordered)


# --------------------------------------------------------------------------
# Output


def per_class_table(matrix: np.ndarray, classes: List[str]) -> str:
    rows = [['class', 'samples', 'predicted', 'recall %', 'precision %', 'most confused with']]
    for i, name in enumerate(classes):
        support, predicted = int(matrix[i].sum()), int(matrix[:, i].sum())
        recall = f'{100.0 * matrix[i, i] / support:.2f}' if support else '-'
        precision = f'{100.0 * matrix[i, i] / predicted:.2f}' if predicted else '-'
        off = matrix[i].copy()
        off[i] = 0
        confused = (f'{classes[int(off.argmax())]} ({int(off.max())})' if off.max() > 0
                    else '-')
        rows.append([name, str(support), str(predicted), recall, precision, confused])
    total = int(matrix.sum())
    accuracy = 100.0 * np.trace(matrix) / total if total else 0.0
    rows.append(['all', str(total), str(total), f'{accuracy:.2f} (accuracy)', '', ''])
    table = AsciiTable(rows, title='Per class')
    table.inner_footing_row_border = True
    return table.table


def count_table(matrix: np.ndarray, classes: List[str]) -> str:
    rows = [['truth \\ prediction'] + classes]
    rows += [[name] + [str(int(v)) for v in matrix[i]] for i, name in enumerate(classes)]
    return AsciiTable(rows, title='Confusion matrix (counts)').table


def plot_matrix(matrix: np.ndarray, classes: List[str], out_file: str,
                show_values: bool, title: Optional[str]) -> str:
    plt = import_pyplot()
    rows = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, rows, out=np.zeros(matrix.shape, dtype=float), where=rows > 0)
    n = len(classes)
    side = min(12.0, max(4.0, 0.45 * n + 2.5))
    fig, ax = plt.subplots(figsize=(side, side * 0.9))
    image = ax.imshow(share * 100.0, cmap='Blues', vmin=0, vmax=100)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label='% of the true class')
    font = 10 if n <= 10 else max(5, 10 - n // 8)
    ax.set_xticks(range(n), classes, rotation=45 if n > 4 else 0, ha='right' if n > 4 else
                  'center', fontsize=font)
    ax.set_yticks(range(n), classes, fontsize=font)
    ax.set_xlabel('prediction')
    ax.set_ylabel('truth')
    ax.set_title(title or f'Confusion matrix ({int(matrix.sum())} samples)')
    if show_values:
        for i in range(n):
            for j in range(n):
                if matrix[i, j]:
                    ax.text(j, i, str(int(matrix[i, j])), ha='center', va='center',
                            fontsize=font, color='white' if share[i, j] > 0.5 else 'black')
    fig.tight_layout()
    return save_figure(fig, out_file)


def main() -> None:
    args = parse_args()
    register_all_modules()
    results = load_results(args.results)
    cfg = read_tool_config(args.config, args.cfg_options, args.data_root)
    task = task_of(results, args.results)
    if task == 'cls':
        classes = dataset_classes(cfg)
        if classes is not None and len(classes) > args.max_classes:
            raise ConfigError(f'the dataset has {len(classes)} classes; a matrix of more than '
                              f'--max-classes {args.max_classes} is unreadable, raise it')
        gts, preds, classes = classification_pairs(results, classes, args.results)
    else:
        gts, preds, classes = vqa_pairs(results, args.max_classes)
    matrix = confusion_matrix(torch.tensor(preds), torch.tensor(gts),
                              num_classes=len(classes)).numpy()

    os.makedirs(args.out, exist_ok=True)
    with open(osp.join(args.out, 'confusion_matrix.json'), 'w', encoding='utf-8') as f:
        json.dump(dict(classes=classes, matrix=matrix.tolist(),
                       rows='truth', columns='prediction'), f, indent=1)
    png = plot_matrix(matrix, classes, osp.join(args.out, 'confusion_matrix.png'),
                      args.show_labels, args.title)
    if len(classes) <= FULL_TABLE_MAX_CLASSES:
        print(count_table(matrix, classes))
    print(per_class_table(matrix, classes))
    print(f'confusion matrix written to {png}')


if __name__ == '__main__':
    run_main(main)
