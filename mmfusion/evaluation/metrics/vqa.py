"""VQA accuracy metric (the official VQAv2 accuracy) for MMEngine evaluators,
and the official VQAv2 results file."""
import os
import os.path as osp
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.fileio import dump
from mmengine.logging import print_log
from mmengine.structures import BaseDataElement
from terminaltables import AsciiTable

from mmfusion.errors import ConfigError
from mmfusion.evaluation.functional.vqa import vqa_accuracy
from mmfusion.registry import METRICS

__all__ = ['VQAAccuracy']


def _type_key(answer_type: str) -> str:
    """Turn an answer type into a metric-name suffix: 'yes/no' -> 'yes_no'."""
    key = re.sub(r'[^a-z0-9_]+', '_', answer_type.lower()).strip('_')
    return key or 'unknown'


def _question_id(sample: dict) -> int:
    """The sample's ``question_id`` as a Python int (the results file needs ints)."""
    qid = sample.get('question_id')
    if isinstance(qid, torch.Tensor) and qid.numel() == 1:
        qid = qid.item()
    if isinstance(qid, (int, np.integer)) and not isinstance(qid, bool):
        return int(qid)
    raise ValueError(
        'VQAAccuracy with outfile_prefix or format_only needs the integer `question_id` of '
        f'every question in the data sample metainfo, got {qid!r} (sample keys '
        f'{sorted(sample)}); keep question_id in the meta_keys of PackMultiModalInputs')


@METRICS.register_module()
class VQAAccuracy(BaseMetric):
    """VQA accuracy, computed exactly as the official VQAv2 evaluation.

    Each question scores :func:`~mmfusion.evaluation.functional.vqa_accuracy`
    of its predicted answer against its annotator answers (``min(1, #matches
    / 3)`` averaged leave-one-out, with the official answer normalisation);
    the metric is the mean over questions, in percent. Like the official
    script it also reports the mean per answer type.

    Each data sample (a dict, MMEngine converts data samples to dicts) must
    have:

    * ``pred_answer`` (str): the predicted answer;
    * ``gt_answers`` (list[str]): the raw answers of all annotators (not
      needed with ``format_only=True``);
    * optionally ``answer_type`` (str, e.g. 'yes/no', 'number', 'other');
    * ``question_id`` (int, metainfo) when a results file is written.

    Returned metrics (MMEngine adds the ``vqa/`` prefix): ``acc`` over all
    questions and ``acc_<type>`` for every answer type present, the type
    reduced to ``[a-z0-9_]`` ('yes/no' -> ``acc_yes_no``). Questions without
    an answer type count in ``acc`` only. Values are in [0, 100] and not
    rounded (the official script rounds to 2 decimals for display, as the
    logged table does). With ``format_only=True`` nothing is returned.

    Results file: with ``outfile_prefix``, ``<outfile_prefix>.json`` is
    written on the main process, in the official VQAv2 results format: a
    JSON list ``[{"question_id": int, "answer": str}, ...]``, one entry per
    evaluated question in dataset order, ``answer`` the raw ``pred_answer``
    (the official evaluation normalises it). That file is what the VQAv2
    evaluation server (test-dev / test-std) and the official ``vqaEval.py``
    read. The argument names are those of mmdet's ``CocoMetric``.

    Args:
        format_only (bool): Only write the results file and compute no
            accuracy, e.g. for a test split without answers (VQAv2
            test-dev); needs ``outfile_prefix``. Defaults to False.
        outfile_prefix (str, optional): Path prefix of the results file,
            ``'work_dirs/vqa/test_results'`` writes
            ``work_dirs/vqa/test_results.json`` (folders are created).
            ``None`` writes nothing. Defaults to None.
        collect_device (str): Device used to collect results across ranks,
            'cpu' or 'gpu'. Defaults to 'cpu'.
        prefix (str, optional): Prefix of the metric names; ``None`` uses
            :attr:`default_prefix` ('vqa').
    """

    default_prefix: str | None = 'vqa'

    def __init__(self, format_only: bool = False, outfile_prefix: str | None = None,
                 collect_device: str = 'cpu', prefix: str | None = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if not isinstance(format_only, bool):
            raise ConfigError(f'VQAAccuracy: format_only must be True or False, got '
                              f'{format_only!r}')
        if outfile_prefix is not None and (not isinstance(outfile_prefix, str)
                                           or not outfile_prefix):
            raise ConfigError(f'VQAAccuracy: outfile_prefix must be a path prefix (str) or '
                              f'None, got {outfile_prefix!r}')
        if format_only and outfile_prefix is None:
            raise ConfigError('VQAAccuracy: format_only=True only writes the results file, so '
                              'it needs outfile_prefix, e.g. '
                              'test_evaluator.outfile_prefix=work_dirs/vqa/test_results')
        self.format_only = format_only
        self.outfile_prefix = outfile_prefix

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        """Score every sample of a batch and keep its accuracy and type
        (and its question id and answer for the results file)."""
        for sample in data_samples:
            if isinstance(sample, BaseDataElement):
                # The Evaluator converts data samples already; this covers
                # direct calls with MultiModalDataSample objects.
                sample = sample.to_dict()
            pred_answer = sample.get('pred_answer')
            if not isinstance(pred_answer, str):
                raise ValueError('VQAAccuracy needs the predicted answer `pred_answer` (a str) '
                                 f'in every data sample, question {sample.get("question_id")!r} '
                                 f'has {pred_answer!r}')
            result: dict[str, Any] = {}
            if self.outfile_prefix is not None:
                result['question_id'] = _question_id(sample)
                result['answer'] = pred_answer
            if not self.format_only:
                gt_answers = sample.get('gt_answers')
                if not gt_answers:
                    qid = sample.get('question_id')
                    raise ValueError(
                        'VQAAccuracy needs the annotator answers (`gt_answers`) of every '
                        f'question, but question {qid!r} has none. A split without answers '
                        '(e.g. VQAv2 test-dev) cannot be scored here: set '
                        'format_only=True and outfile_prefix to write the official results '
                        'file and submit it to the evaluation server.')
                answer_type = sample.get('answer_type')
                result['acc'] = vqa_accuracy(pred_answer, gt_answers)
                result['answer_type'] = None if answer_type is None else str(answer_type)
            self.results.append(result)

    def results_to_json(self, results: list[dict]) -> str:
        """Write ``<outfile_prefix>.json`` in the official VQAv2 results format.

        Args:
            results: The collected results of :meth:`process`, dataset order.

        Returns:
            str: The path of the written file.
        """
        entries = [{'question_id': r['question_id'], 'answer': r['answer']} for r in results]
        repeated = [qid for qid, n in Counter(e['question_id'] for e in entries).items() if n > 1]
        if repeated:
            # the evaluation server rejects a file that answers a question twice
            raise ValueError(f'VQAAccuracy: question_id {sorted(repeated)[:10]} evaluated more '
                             'than once; the results file needs one answer per question '
                             '(is the test set repeated or its question ids not unique?)')
        path = f'{self.outfile_prefix}.json'
        folder = osp.dirname(path)
        if folder:
            os.makedirs(folder, exist_ok=True)
        dump(entries, path)
        print_log(f'VQA results of {len(entries)} questions written to {path}', logger='current')
        return path

    def compute_metrics(self, results: list[dict]) -> dict[str, float]:
        """Mean accuracy in percent, overall and per answer type (nothing with
        ``format_only``); writes the results file first if asked to."""
        if not results:
            raise ValueError('VQAAccuracy received no samples to evaluate')
        if self.outfile_prefix is not None:
            self.results_to_json(results)
        if self.format_only:
            return {}
        by_type: dict[str, list[float]] = defaultdict(list)
        for result in results:
            if result['answer_type'] is not None:
                by_type[result['answer_type']].append(result['acc'])

        metrics = {'acc': 100.0 * sum(r['acc'] for r in results) / len(results)}
        rows = [['answer type', 'questions', 'accuracy']]
        for answer_type in sorted(by_type):
            key = f'acc_{_type_key(answer_type)}'
            if key in metrics:
                raise ValueError(f'answer types {sorted(by_type)} give the metric name '
                                 f'{key!r} twice; make the types distinct in [a-z0-9_]')
            accs = by_type[answer_type]
            metrics[key] = 100.0 * sum(accs) / len(accs)
            rows.append([answer_type, str(len(accs)), f'{metrics[key]:.2f}'])
        rows.append(['overall', str(len(results)), f'{metrics["acc"]:.2f}'])

        table = AsciiTable(rows, title='VQA accuracy')
        table.inner_footing_row_border = True
        print_log('\n' + table.table, logger='current')
        return metrics
