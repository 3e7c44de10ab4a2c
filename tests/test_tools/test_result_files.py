"""Official result files from tools/test.py, rescored by the official evaluation code.

The VQA quick-start and the RGB-D detection quick-start train one epoch on
the small MMShapes copy; ``tools/test.py`` then writes the metrics
(``metrics.json``), the pickled predictions (``--out``) and the official
result files (``test_evaluator.outfile_prefix``). The result files are
rescored here without any mmfusion code: COCO boxes by pycocotools'
``COCO.loadRes`` + ``COCOeval``, VQA answers by a transcription of the
official VQAv2 evaluator (``vqaEval.py``) below. Both must reproduce the
numbers ``tools/test.py`` reported.
"""
import json
import os.path as osp
import pickle
import re
from collections import defaultdict

import pytest
from conftest import PYTHON, run_tool, small_cfg
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

VQA_CONFIG = 'configs/vqa/mmshapes_vqa.py'
DET_CONFIG = 'configs/detection/mmshapes_rgbd_det.py'


# --- the official VQAv2 evaluator, transcribed -----------------------------
# Constants of the official ``VQAEval`` (GT-Vision-Lab/VQA,
# PythonEvaluationTools/vqaEvaluation/vqaEval.py); kept here, apart from
# mmfusion, so that a mistake in mmfusion's copy cannot hide in both.
OFFICIAL_CONTRACTIONS = {
    'aint': "ain't", 'arent': "aren't", 'cant': "can't", 'couldve': "could've",
    'couldnt': "couldn't", "couldn'tve": "couldn't've", "couldnt've": "couldn't've",
    'didnt': "didn't", 'doesnt': "doesn't", 'dont': "don't", 'hadnt': "hadn't",
    "hadnt've": "hadn't've", "hadn'tve": "hadn't've", 'hasnt': "hasn't", 'havent': "haven't",
    'hed': "he'd", "hed've": "he'd've", "he'dve": "he'd've", 'hes': "he's", 'howd': "how'd",
    'howll': "how'll", 'hows': "how's", "Id've": "I'd've", "I'dve": "I'd've", 'Im': "I'm",
    'Ive': "I've", 'isnt': "isn't", 'itd': "it'd", "itd've": "it'd've", "it'dve": "it'd've",
    'itll': "it'll", "let's": "let's", 'maam': "ma'am", 'mightnt': "mightn't",
    "mightnt've": "mightn't've", "mightn'tve": "mightn't've", 'mightve': "might've",
    'mustnt': "mustn't", 'mustve': "must've", 'neednt': "needn't", 'notve': "not've",
    'oclock': "o'clock", 'oughtnt': "oughtn't", "ow's'at": "'ow's'at", "'ows'at": "'ow's'at",
    "'ow'sat": "'ow's'at", 'shant': "shan't", "shed've": "she'd've", "she'dve": "she'd've",
    "she's": "she's", 'shouldve': "should've", 'shouldnt': "shouldn't",
    "shouldnt've": "shouldn't've", "shouldn'tve": "shouldn't've", "somebody'd": 'somebodyd',
    "somebodyd've": "somebody'd've", "somebody'dve": "somebody'd've",
    'somebodyll': "somebody'll", 'somebodys': "somebody's", 'someoned': "someone'd",
    "someoned've": "someone'd've", "someone'dve": "someone'd've", 'someonell': "someone'll",
    'someones': "someone's", 'somethingd': "something'd", "somethingd've": "something'd've",
    "something'dve": "something'd've", 'somethingll': "something'll", 'thats': "that's",
    'thered': "there'd", "thered've": "there'd've", "there'dve": "there'd've",
    'therere': "there're", 'theres': "there's", 'theyd': "they'd", "theyd've": "they'd've",
    "they'dve": "they'd've", 'theyll': "they'll", 'theyre': "they're", 'theyve': "they've",
    'twas': "'twas", 'wasnt': "wasn't", "wed've": "we'd've", "we'dve": "we'd've",
    'weve': "we've", 'werent': "weren't", 'whatll': "what'll", 'whatre': "what're",
    'whats': "what's", 'whatve': "what've", 'whens': "when's", 'whered': "where'd",
    'wheres': "where's", 'whereve': "where've", 'whod': "who'd", "whod've": "who'd've",
    "who'dve": "who'd've", 'wholl': "who'll", 'whos': "who's", 'whove': "who've",
    'whyll': "why'll", 'whyre': "why're", 'whys': "why's", 'wont': "won't",
    'wouldve': "would've", 'wouldnt': "wouldn't", "wouldnt've": "wouldn't've",
    "wouldn'tve": "wouldn't've", 'yall': "y'all", "yall'll": "y'all'll", "y'allll": "y'all'll",
    "yall'd've": "y'all'd've", "y'alld've": "y'all'd've", "y'all'dve": "y'all'd've",
    'youd': "you'd", "youd've": "you'd've", "you'dve": "you'd've", 'youll': "you'll",
    'youre': "you're", 'youve': "you've",

}
OFFICIAL_MANUAL_MAP = {'none': '0', 'zero': '0', 'one': '1', 'two': '2', 'three': '3',
                       'four': '4', 'five': '5', 'six': '6', 'seven': '7', 'eight': '8',
                       'nine': '9', 'ten': '10'}
OFFICIAL_ARTICLES = ['a', 'an', 'the']
OFFICIAL_PERIOD_STRIP = re.compile(r'(?!<=\d)(\.)(?!\d)')
OFFICIAL_COMMA_STRIP = re.compile(r'(\d)(\,)(\d)')
OFFICIAL_PUNCT = [';', r'/', '[', ']', '"', '{', '}', '(', ')', '=', '+', '\\', '_', '-', '>',
                  '<', '@', '`', ',', '?', '!']


def official_process_punctuation(in_text: str) -> str:
    out_text = in_text
    for p in OFFICIAL_PUNCT:
        if (p + ' ' in in_text or ' ' + p in in_text) or \
                (re.search(OFFICIAL_COMMA_STRIP, in_text) is not None):
            out_text = out_text.replace(p, '')
        else:
            out_text = out_text.replace(p, ' ')
    # the official call, re.UNICODE passed as the count included
    return OFFICIAL_PERIOD_STRIP.sub('', out_text, re.UNICODE)


def official_process_digit_article(in_text: str) -> str:
    out_text = []
    for word in in_text.lower().split():
        word = OFFICIAL_MANUAL_MAP.setdefault(word, word)
        if word not in OFFICIAL_ARTICLES:
            out_text.append(word)
    for word_id, word in enumerate(out_text):
        if word in OFFICIAL_CONTRACTIONS:
            out_text[word_id] = OFFICIAL_CONTRACTIONS[word]
    return ' '.join(out_text)


def official_vqa_eval(annotations: list, results: list) -> dict:
    """``VQA.loadRes`` + ``VQAEval.evaluate`` on the official file contents.

    Returns the unrounded overall and per-answer-type accuracies (percent);
    the official script rounds them to 2 decimals for display.
    """
    gts = {ann['question_id']: ann for ann in annotations}
    res = {r['question_id']: r for r in results}
    # VQA.loadRes: the results must answer exactly the questions of the split
    assert len(res) == len(results), 'a question is answered twice'
    assert set(res) == set(gts), 'Results do not correspond to current VQA set.'
    acc_qa, acc_ans_type = [], defaultdict(list)
    for ques_id in gts:
        gt_answers = [dict(a) for a in gts[ques_id]['answers']]
        for ans_dic in gt_answers:
            ans_dic['answer'] = ans_dic['answer'].replace('\n', ' ')
            ans_dic['answer'] = ans_dic['answer'].replace('\t', ' ')
            ans_dic['answer'] = ans_dic['answer'].strip()
        res_ans = res[ques_id]['answer']
        res_ans = res_ans.replace('\n', ' ')
        res_ans = res_ans.replace('\t', ' ')
        res_ans = res_ans.strip()
        gt_acc = []
        if len({ans['answer'] for ans in gt_answers}) > 1:
            for ans_dic in gt_answers:
                ans_dic['answer'] = official_process_punctuation(ans_dic['answer'])
                ans_dic['answer'] = official_process_digit_article(ans_dic['answer'])
            res_ans = official_process_punctuation(res_ans)
            res_ans = official_process_digit_article(res_ans)
        for gt_ans_datum in gt_answers:
            other_gt_ans = [item for item in gt_answers if item != gt_ans_datum]
            matching_ans = [item for item in other_gt_ans if item['answer'] == res_ans]
            gt_acc.append(min(1, float(len(matching_ans)) / 3))
        avg_gt_acc = float(sum(gt_acc)) / len(gt_acc)
        acc_qa.append(avg_gt_acc)
        acc_ans_type[gts[ques_id]['answer_type']].append(avg_gt_acc)
    return {'overall': 100 * float(sum(acc_qa)) / len(acc_qa),
            'perAnswerType': {t: 100 * float(sum(a)) / len(a) for t, a in acc_ans_type.items()}}


def test_official_vqa_eval_transcription_on_hand_computed_cases():
    """The oracle itself: 0-4 matching annotators give 0, 0.3, 0.6, 0.9, 1."""
    annotations = [dict(question_id=i, answer_type='number',
                        answers=[dict(answer='2', answer_id=k + 1) for k in range(i)]
                        + [dict(answer='3', answer_id=k + 1) for k in range(i, 10)])
                   for i in range(5)]
    results = [dict(question_id=i, answer='Two.') for i in range(5)]
    acc = official_vqa_eval(annotations, results)
    assert acc['overall'] == pytest.approx(100 * (0 + 0.3 + 0.6 + 0.9 + 1.0) / 5)
    assert acc['perAnswerType'] == {'number': pytest.approx(acc['overall'])}
    with pytest.raises(AssertionError, match='correspond'):
        official_vqa_eval(annotations, results[:4])


# --- training once per module ----------------------------------------------

@pytest.fixture(scope='module')
def vqa_checkpoint(mmshapes_root, tmp_path_factory):
    """(config, checkpoint) of a 1-epoch VQA quick-start run."""
    work_dir = str(tmp_path_factory.mktemp('vqa_result_files'))
    cfg = small_cfg(VQA_CONFIG, mmshapes_root, work_dir, max_epochs=1)
    run_tool([PYTHON, 'tools/train.py', cfg, '--work-dir', work_dir])
    return cfg, osp.join(work_dir, 'epoch_1.pth')


@pytest.fixture(scope='module')
def det_checkpoint(mmshapes_root, tmp_path_factory):
    """(config, checkpoint) of a 1-epoch RGB-D detection quick-start run."""
    work_dir = str(tmp_path_factory.mktemp('det_result_files'))
    cfg = small_cfg(DET_CONFIG, mmshapes_root, work_dir, max_epochs=1)
    run_tool([PYTHON, 'tools/train.py', cfg, '--work-dir', work_dir])
    return cfg, osp.join(work_dir, 'epoch_1.pth')


def read_json(path: str):
    with open(path, encoding='utf-8') as f:
        return json.load(f)


# --- VQA ---------------------------------------------------------------------

def test_vqa_results_file_rescored_by_the_official_evaluator(vqa_checkpoint, mmshapes_root,
                                                             tmp_path):
    cfg, checkpoint = vqa_checkpoint
    prefix = str(tmp_path / 'results' / 'vqa_val')
    out = str(tmp_path / 'preds.pkl')
    run_tool([PYTHON, 'tools/test.py', cfg, checkpoint, '--work-dir', str(tmp_path),
              '--out', out, '--cfg-options', f'test_evaluator.outfile_prefix={prefix}'])
    metrics = read_json(str(tmp_path / 'metrics.json'))
    results = read_json(prefix + '.json')
    questions = read_json(osp.join(mmshapes_root, 'vqa',
                                   'v2_OpenEnded_mmshapes_val_questions.json'))['questions']
    annotations = read_json(osp.join(mmshapes_root, 'vqa',
                                     'v2_mmshapes_val_annotations.json'))['annotations']

    # the official format: one {question_id: int, answer: str} per question,
    # the dataset's own question ids
    assert all(set(r) == {'question_id', 'answer'} and type(r['question_id']) is int
               and isinstance(r['answer'], str) for r in results)
    assert [r['question_id'] for r in results] == [q['question_id'] for q in questions]

    official = official_vqa_eval(annotations, results)
    print(f"vqa/acc {metrics['vqa/acc']!r}, official rescore {official['overall']!r}")
    assert metrics['vqa/acc'] == pytest.approx(official['overall'], abs=1e-9)
    assert round(metrics['vqa/acc'], 2) == round(official['overall'], 2)
    for answer_type, acc in official['perAnswerType'].items():
        key = 'vqa/acc_' + re.sub(r'[^a-z0-9_]+', '_', answer_type).strip('_')
        assert metrics[key] == pytest.approx(acc, abs=1e-9), answer_type
    # a trained model, not a constant answer: the comparison is not 0 == 0
    assert 0 < official['overall'] < 100 and len({r['answer'] for r in results}) > 1

    # --out: the pickled data samples, one dict per question, in the same order
    with open(out, 'rb') as f:
        dumped = pickle.load(f)
    assert isinstance(dumped, list) and all(isinstance(d, dict) for d in dumped)
    assert [(d['question_id'], d['pred_answer']) for d in dumped] == \
        [(r['question_id'], r['answer']) for r in results]


def test_vqa_format_only_on_a_split_without_answers(vqa_checkpoint, mmshapes_root, tmp_path):
    """test-dev style: the annotation file is withheld; only the results file is written."""
    cfg, checkpoint = vqa_checkpoint
    prefix = str(tmp_path / 'vqa_testdev')
    proc = run_tool([PYTHON, 'tools/test.py', cfg, checkpoint, '--work-dir', str(tmp_path),
                     '--cfg-options', 'test_dataloader.dataset.ann_file=',
                     'test_evaluator.format_only=True',
                     f'test_evaluator.outfile_prefix={prefix}'])
    assert read_json(str(tmp_path / 'metrics.json')) == {}
    assert 'vqa/acc' not in proc.stdout
    results = read_json(prefix + '.json')
    questions = read_json(osp.join(mmshapes_root, 'vqa',
                                   'v2_OpenEnded_mmshapes_val_questions.json'))['questions']
    assert [r['question_id'] for r in results] == [q['question_id'] for q in questions]
    assert all(isinstance(r['answer'], str) and r['answer'] for r in results)


def test_out_must_be_a_pickle_file(tmp_path):
    with pytest.raises(AssertionError, match=r'--out must name a pickle file'):
        run_tool([PYTHON, 'tools/test.py', VQA_CONFIG, str(tmp_path / 'missing.pth'),
                  '--out', str(tmp_path / 'preds.json')])


# --- COCO detection ------------------------------------------------------------

def test_coco_results_file_rescored_by_pycocotools(det_checkpoint, mmshapes_root, tmp_path):
    cfg, checkpoint = det_checkpoint
    prefix = str(tmp_path / 'det_val')
    out = str(tmp_path / 'preds.pkl')
    run_tool([PYTHON, 'tools/test.py', cfg, checkpoint, '--work-dir', str(tmp_path),
              '--out', out, '--cfg-options', f'test_evaluator.outfile_prefix={prefix}'])
    metrics = read_json(str(tmp_path / 'metrics.json'))
    detections = read_json(prefix + '.bbox.json')
    assert detections, 'the trained detector predicted nothing'
    assert all(set(d) == {'image_id', 'category_id', 'bbox', 'score'} and len(d['bbox']) == 4
               for d in detections)

    # the ground truth the metric built from the samples, checked against
    # MMShapes' own instances file: real image ids, the same boxes, and the
    # '<shape> near|far' class of each object
    instances = read_json(osp.join(mmshapes_root, 'annotations', 'instances_val.json'))
    shape_of = {c['id']: c['name'] for c in instances['categories']}
    gt = read_json(prefix + '.gt.json')
    assert sorted(img['id'] for img in gt['images']) == \
        sorted(img['id'] for img in instances['images'])
    class_of = {c['id']: c['name'] for c in gt['categories']}
    expected = sorted((a['image_id'], tuple(float(v) for v in a['bbox']),
                       f"{shape_of[a['category_id']]} {'near' if a['distance'] < 5 else 'far'}")
                      for a in instances['annotations'])
    written = sorted((a['image_id'], tuple(a['bbox']), class_of[a['category_id']])
                     for a in gt['annotations'])
    assert written == expected
    assert {d['image_id'] for d in detections} <= {img['id'] for img in instances['images']}
    assert {d['category_id'] for d in detections} <= set(class_of)

    coco_gt = COCO(prefix + '.gt.json')
    coco_eval = COCOeval(coco_gt, coco_gt.loadRes(prefix + '.bbox.json'), 'bbox')
    coco_eval.evaluate()
    coco_eval.accumulate()
    coco_eval.summarize()
    keys = ('bbox_mAP', 'bbox_mAP_50', 'bbox_mAP_75', 'bbox_mAP_s', 'bbox_mAP_m', 'bbox_mAP_l')
    print(f"coco/bbox_mAP {metrics['coco/bbox_mAP']!r}, pycocotools rescore "
          f'{coco_eval.stats[0]!r}')
    for i, key in enumerate(keys):
        assert metrics[f'coco/{key}'] == pytest.approx(float(coco_eval.stats[i]), abs=1e-9), key
    assert coco_eval.stats[0] > 0  # not a trivial 0 == 0

    with open(out, 'rb') as f:
        dumped = pickle.load(f)
    assert len(dumped) == len(instances['images'])
    assert sum(len(d['pred_instances']['scores']) for d in dumped) == len(detections)
