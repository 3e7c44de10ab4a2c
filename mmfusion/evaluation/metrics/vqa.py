"""VQA accuracy metric (the official VQAv2 accuracy) for MMEngine evaluators."""
import re
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log
from mmengine.structures import BaseDataElement
from terminaltables import AsciiTable

from mmfusion.evaluation.functional.vqa import vqa_accuracy
from mmfusion.registry import METRICS

__all__ = ['VQAAccuracy']


def _type_key(answer_type: str) -> str:
    """Turn an answer type into a metric-name suffix: 'yes/no' -> 'yes_no'."""
    key = re.sub(r'[^a-z0-9_]+', '_', answer_type.lower()).strip('_')
    return key or 'unknown'


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
    * ``gt_answers`` (list[str]): the raw answers of all annotators;
    * optionally ``answer_type`` (str, e.g. 'yes/no', 'number', 'other').

    Returned metrics (MMEngine adds the ``vqa/`` prefix): ``acc`` over all
    questions and ``acc_<type>`` for every answer type present, the type
    reduced to ``[a-z0-9_]`` ('yes/no' -> ``acc_yes_no``). Questions without
    an answer type count in ``acc`` only. Values are in [0, 100] and not
    rounded (the official script rounds to 2 decimals for display, as the
    logged table does).

    Args:
        collect_device (str): Device used to collect results across ranks,
            'cpu' or 'gpu'. Defaults to 'cpu'.
        prefix (str, optional): Prefix of the metric names; ``None`` uses
            :attr:`default_prefix` ('vqa').
    """

    default_prefix: str | None = 'vqa'

    def __init__(self, collect_device: str = 'cpu', prefix: str | None = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        """Score every sample of a batch and keep its accuracy and type."""
        for sample in data_samples:
            if isinstance(sample, BaseDataElement):
                # The Evaluator converts data samples already; this covers
                # direct calls with MultiModalDataSample objects.
                sample = sample.to_dict()
            gt_answers = sample.get('gt_answers')
            if not gt_answers:
                qid = sample.get('question_id')
                raise ValueError(
                    'VQAAccuracy needs the annotator answers (`gt_answers`) of every '
                    f'question, but question {qid!r} has none. A test split without '
                    'answers cannot be scored here: dump the predictions instead and '
                    'submit them to the official evaluation server.')
            pred_answer = sample.get('pred_answer')
            if pred_answer is None:
                raise ValueError('VQAAccuracy needs `pred_answer` in every data sample, '
                                 f'question {sample.get("question_id")!r} has none')
            answer_type = sample.get('answer_type')
            self.results.append(
                {
                    'acc': vqa_accuracy(pred_answer, gt_answers),
                    'answer_type': None if answer_type is None else str(answer_type),
                })

    def compute_metrics(self, results: list[dict]) -> dict[str, float]:
        """Mean accuracy in percent, overall and per answer type."""
        if not results:
            raise ValueError('VQAAccuracy received no samples to evaluate')
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
