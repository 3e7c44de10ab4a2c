"""Tests of the official VQA accuracy: normalisation, scoring, vocab, metric."""
import random

import pytest
from mmengine.evaluator import Evaluator
from mmengine.registry import init_default_scope

from mmfusion.evaluation.functional import (
    build_answer_vocab,
    normalize_answer,
    process_digit_article,
    process_punctuation,
    vqa_accuracy,
    vqa_soft_scores,
)
from mmfusion.evaluation.metrics.vqa import VQAAccuracy  # noqa: F401 (registers it)
from mmfusion.structures.data_sample import MultiModalDataSample


def official_loop(pred, gt_answers):
    """The body of the official ``VQAEval.evaluate`` for one question.

    Transcribed statement by statement (answer dicts, comparison of dicts to
    leave one annotator out, the unanimous-annotators shortcut) as an oracle
    for the factored implementation. Only valid for >= 2 answers.
    """
    answers = [{'answer': a, 'answer_id': i + 1} for i, a in enumerate(gt_answers)]
    for ans_dic in answers:
        ans_dic['answer'] = ans_dic['answer'].replace('\n', ' ')
        ans_dic['answer'] = ans_dic['answer'].replace('\t', ' ')
        ans_dic['answer'] = ans_dic['answer'].strip()
    res_ans = pred.replace('\n', ' ').replace('\t', ' ').strip()
    gt_acc = []
    if len({a['answer'] for a in answers}) > 1:
        for ans_dic in answers:
            ans_dic['answer'] = process_digit_article(process_punctuation(ans_dic['answer']))
        res_ans = process_digit_article(process_punctuation(res_ans))
    for gt_datum in answers:
        other = [item for item in answers if item != gt_datum]
        matching = [item for item in other if item['answer'] == res_ans]
        gt_acc.append(min(1, float(len(matching)) / 3))
    return float(sum(gt_acc)) / len(gt_acc)


# Answers covering every normalisation rule, and near-duplicates of each
# other, so that random draws often match after normalisation only.
POOL = [
    'Two', 'two', '2', ' 2 ', 'the dog', 'dog', 'a dog', 'Dog.', 'yes', 'Yes', 'yes.',
    'no', 'No!', '1,000', '1000', 'red, blue', 'red,blue', 'red blue', '3.5', '3.5.',
    'dont', "don't", '\tred\n', 'red', 'none', '0', 'zero', 'mr. smith', 'Mr smith',
    '(left)', 'left', 'black/white', 'black white', 'the', '', 'ten', '10',
]


# --- normalize_answer ---------------------------------------------------------

@pytest.mark.parametrize('raw, expected', [
    ('Two', '2'),                 # number word -> digit, after lower-casing
    ('ten', '10'),
    ('none', '0'),                # official: 'none' counts as zero
    ('the dog', 'dog'),           # articles dropped
    ('A dog', 'dog'),
    ('dont', "don't"),            # contraction restored
    ("hadn'tve", "hadn't've"),    # apostrophes are not punctuation
    ('Im', 'im'),                 # capitalised keys never match (official quirk)
    ('yes.', 'yes'),              # trailing period stripped
    ('Yes!', 'yes'),
    ('1,000', '1000'),            # digit,digit: every mark is deleted
    ('red,blue', 'red blue'),     # no space next to ',': replaced by a space
    ('red, blue', 'red blue'),    # space next to ',': deleted
    ('3.5', '3.5'),               # period followed by a digit is kept
    ('.5', '.5'),
    ('5.', '5'),
    ('mr. smith', 'mr smith'),    # "(?!<=\d)" typo: any period not before a digit goes
    ('\tred\n', 'red'),           # tabs/newlines cleaned, ends stripped
    ('black/white', 'black white'),
    ('(left)', 'left'),
    ('the', ''),
])
def test_normalize_answer(raw, expected):
    assert normalize_answer(raw) == expected


def test_digit_comma_anywhere_deletes_all_marks():
    # Official behaviour: one "1,000" switches every mark to deletion, so
    # the slash is deleted too instead of becoming a space.
    assert normalize_answer('1,000 black/white') == '1000 blackwhite'


def test_more_than_32_periods_all_stripped():
    # The official passes re.UNICODE (32) as re.sub's count and would leave
    # the 33rd period onwards; that bug is deliberately not reproduced.
    assert normalize_answer('.' * 40 + 'x') == 'x'
    assert normalize_answer('.' * 10 + 'x') == 'x'


def test_normalize_is_idempotent():
    rng = random.Random(0)
    chars = 'ab12 .,;/!?-\'"()\t'
    samples = POOL + [''.join(rng.choice(chars) for _ in range(rng.randint(0, 12)))
                      for _ in range(500)]
    for answer in samples:
        once = normalize_answer(answer)
        assert normalize_answer(once) == once, answer


def test_normalize_rejects_non_str():
    with pytest.raises(TypeError):
        normalize_answer(2)


# --- vqa_accuracy -------------------------------------------------------------

@pytest.mark.parametrize('num_match, expected', [
    (0, 0.0),
    # 1 match: its own subset keeps 0 matches -> 0; the 9 others keep 1 ->
    # 1/3; mean 9 * (1/3) / 10 = 0.3.
    (1, 0.3),
    # 2 matches: their 2 subsets keep 1 -> 1/3; the 8 others keep 2 -> 2/3;
    # mean (2/3 + 16/3) / 10 = 0.6.
    (2, 0.6),
    # 3 matches: the 7 subsets without a matching annotator removed keep 3
    # -> 1; the 3 subsets with one removed keep 2 -> 2/3; mean
    # (7 + 3 * 2/3) / 10 = 9 / 10 = 0.9.
    (3, 0.9),
    # 4 matches: every subset keeps at least 3 -> 1.
    (4, 1.0),
    (7, 1.0),
])
def test_ten_annotators(num_match, expected):
    gt = ['cat'] * num_match + ['dog'] * (10 - num_match)
    assert vqa_accuracy('cat', gt) == pytest.approx(expected)


def test_prediction_and_answers_are_normalised():
    gt = ['2', 'two', 'Two', '3', '3', '3', '3', '3', '3', '3']
    # 'Two', 'two' and '2' all normalise to '2': 3 matches -> 0.9.
    assert vqa_accuracy('Two', gt) == pytest.approx(0.9)
    assert vqa_accuracy('2', gt) == pytest.approx(0.9)
    # 4 of 5 match once normalised: every subset keeps >= 3 matches -> 1.
    assert vqa_accuracy('the dog', ['dog', 'a dog', 'Dog.', 'The dog', 'cat']) == 1.0
    # 3 of 4 match: 3 subsets keep 2 -> 2/3, one keeps 3 -> 1; (2 + 1) / 4.
    assert vqa_accuracy('dont', ["don't", "don't", 'Dont', 'no']) == pytest.approx(0.75)
    assert vqa_accuracy('yes.', ['yes'] * 4 + ['no'] * 6) == pytest.approx(1.0)
    assert vqa_accuracy('1,000', ['1000'] * 4 + ['100'] * 6) == pytest.approx(1.0)
    # The period of "3.5" is kept, so "35" does not match.
    assert vqa_accuracy('3.5', ['3.5'] * 4 + ['3'] * 6) == pytest.approx(1.0)
    assert vqa_accuracy('35', ['3.5'] * 4 + ['3'] * 6) == 0.0
    assert vqa_accuracy('\tred\n', ['red'] * 4 + ['blue'] * 6) == pytest.approx(1.0)


def test_unanimous_answers_are_not_normalised():
    # Official quirk: when every annotator typed the same string, neither the
    # answers nor the prediction are normalised, so only the raw string (up
    # to newlines, tabs and surrounding spaces) scores.
    gt = ['Two'] * 10
    assert vqa_accuracy('2', gt) == 0.0
    assert vqa_accuracy('two', gt) == 0.0
    assert vqa_accuracy('Two', gt) == 1.0
    assert vqa_accuracy(' Two\n', gt) == 1.0
    # Whitespace cleaning happens first, so these two count as unanimous.
    assert vqa_accuracy('yes', ['yes', ' yes\t'] * 5) == 1.0
    assert vqa_accuracy('Yes', ['yes', ' yes\t'] * 5) == 0.0


def test_fewer_than_ten_answers():
    # 3 identical answers: each subset of 2 keeps 2 matches -> 2/3.
    assert vqa_accuracy('cat', ['cat'] * 3) == pytest.approx(2 / 3)
    # 2 identical answers: each subset of 1 keeps 1 match -> 1/3.
    assert vqa_accuracy('cat', ['cat', 'cat']) == pytest.approx(1 / 3)
    # 4 identical answers: each subset of 3 keeps 3 -> 1.
    assert vqa_accuracy('cat', ['cat'] * 4) == 1.0
    # 5 answers, 2 match: 2 subsets keep 1 -> 1/3, 3 keep 2 -> 2/3;
    # (2/3 + 2) / 5 = 8/15.
    assert vqa_accuracy('cat', ['cat', 'cat', 'dog', 'dog', 'cow']) == pytest.approx(8 / 15)


def test_single_answer_is_exact_match_after_normalisation():
    assert vqa_accuracy('Two', ['2']) == 1.0
    assert vqa_accuracy('the dog.', ['Dog']) == 1.0
    assert vqa_accuracy('3', ['2']) == 0.0


def test_bad_answers_raise():
    with pytest.raises(ValueError, match='at least one annotator answer'):
        vqa_accuracy('yes', [])
    with pytest.raises(TypeError, match='single str'):
        vqa_accuracy('yes', 'yes')
    with pytest.raises(TypeError):
        vqa_accuracy(None, ['yes'])


def test_matches_official_loop_bit_for_bit():
    rng = random.Random(1)
    for _ in range(500):
        gt = [rng.choice(POOL) for _ in range(rng.randint(2, 10))]
        pred = rng.choice(POOL)
        assert vqa_accuracy(pred, gt) == official_loop(pred, gt), (pred, gt)


# --- vqa_soft_scores ----------------------------------------------------------

def test_soft_scores_example():
    assert vqa_soft_scores(['cat'] * 3 + ['dog'] * 7) == pytest.approx({'cat': 0.9, 'dog': 1.0})
    scores = vqa_soft_scores(['Two', '2', 'two', 'three'])
    # '2' matches 3 of 4: its 3 subsets keep 2 -> 2/3, the other keeps 3 -> 1.
    assert scores == pytest.approx({'2': 0.75, '3': 0.25})
    # The unanimous quirk: the normalised key '2' would score 0 officially.
    assert vqa_soft_scores(['Two'] * 10) == {'2': 0.0}
    assert vqa_soft_scores(['yes'] * 10) == {'yes': 1.0}


def test_soft_scores_agree_with_accuracy():
    rng = random.Random(2023)
    for _ in range(200):
        gt = [rng.choice(POOL) for _ in range(rng.randint(1, 10))]
        scores = vqa_soft_scores(gt)
        assert list(scores) == list(dict.fromkeys(normalize_answer(a) for a in gt))
        for key, score in scores.items():
            assert score == vqa_accuracy(key, gt), (key, gt)
        # Away from the unanimous quirk, the score of any prediction is the
        # soft score of its normalised form (0 if absent): training targets
        # and evaluation agree.
        if len({a.replace('\n', ' ').replace('\t', ' ').strip() for a in gt}) > 1:
            for pred in POOL:
                assert vqa_accuracy(pred, gt) == scores.get(normalize_answer(pred), 0.0)


# --- build_answer_vocab -------------------------------------------------------

def test_build_answer_vocab():
    answer_lists = [['yes', 'Yes', 'no'], ['no', '2', 'two'], ['cat', 'the'], ['a dog']]
    # Counts after normalisation: '2' 2, 'no' 2, 'yes' 2, 'cat' 1, 'dog' 1;
    # '' (from 'the') is dropped. Ties are broken alphabetically.
    assert build_answer_vocab(answer_lists) == ['2', 'no', 'yes', 'cat', 'dog']
    assert build_answer_vocab(answer_lists, min_count=2) == ['2', 'no', 'yes']
    assert build_answer_vocab(answer_lists, max_size=4) == ['2', 'no', 'yes', 'cat']
    assert build_answer_vocab(iter(answer_lists), min_count=2, max_size=1) == ['2']
    with pytest.raises(TypeError):
        build_answer_vocab(['yes', 'no'])
    with pytest.raises(ValueError):
        build_answer_vocab(answer_lists, min_count=0)


# --- VQAAccuracy through MMEngine's Evaluator --------------------------------

def _evaluator():
    init_default_scope('mmfusion')
    return Evaluator([{'type': 'VQAAccuracy'}])


def test_metric_through_evaluator():
    evaluator = _evaluator()
    data_samples = [
        # yes/no: 1.0 and 0.0 -> 50
        {'pred_answer': 'yes', 'gt_answers': ['yes'] * 10, 'answer_type': 'yes/no',
         'question_id': 1},
        {'pred_answer': 'no', 'gt_answers': ['yes'] * 10, 'answer_type': 'yes/no',
         'question_id': 2},
        # number: 3 of 10 -> 0.9 -> 90
        {'pred_answer': 'Two', 'gt_answers': ['2'] * 3 + ['3'] * 7, 'answer_type': 'number',
         'question_id': 3},
        # other: 1 of 10 -> 0.3 -> 30
        {'pred_answer': 'a red car', 'gt_answers': ['red car'] + ['blue car'] * 9,
         'answer_type': 'other', 'question_id': 4},
    ]
    evaluator.process(data_samples[:2])
    evaluator.process(data_samples[2:])
    metrics = evaluator.evaluate(len(data_samples))
    assert set(metrics) == {'vqa/acc', 'vqa/acc_yes_no', 'vqa/acc_number', 'vqa/acc_other'}
    assert metrics['vqa/acc'] == pytest.approx((100 + 0 + 90 + 30) / 4)
    assert metrics['vqa/acc_yes_no'] == pytest.approx(50.0)
    assert metrics['vqa/acc_number'] == pytest.approx(90.0)
    assert metrics['vqa/acc_other'] == pytest.approx(30.0)


def test_metric_with_data_samples_and_no_answer_type():
    evaluator = _evaluator()
    sample = MultiModalDataSample(metainfo={'question_id': 7})
    sample.gt_answers = ['cat', 'cat', 'dog', 'dog']
    sample.pred_answer = 'cat'
    evaluator.process([sample])
    # 4 answers, 2 match: 2 subsets keep 1 -> 1/3, 2 keep 2 -> 2/3; mean 1/2.
    assert evaluator.evaluate(1) == pytest.approx({'vqa/acc': 50.0})


def test_metric_without_answers_raises():
    evaluator = _evaluator()
    with pytest.raises(ValueError, match='gt_answers'):
        evaluator.process([{'pred_answer': 'yes', 'question_id': 1}])
    with pytest.raises(ValueError, match='gt_answers'):
        evaluator.process([{'pred_answer': 'yes', 'gt_answers': [], 'question_id': 1}])
