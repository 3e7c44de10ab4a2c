"""The analysis tools on real runs: VQA and audio-visual classification quick-starts
trained for 2 epochs on a small MMShapes copy, tested with their predictions
dumped, then analyze_logs, get_flops, confusion_matrix, analyze_results and
print_config on the outputs, checked against independent computations. Also
the evaluation progress bar (EvalProgressHook) on its own and through
tools/test.py on a pseudo-terminal."""
import glob
import io
import json
import os
import os.path as osp
import pickle
import re
import statistics
import subprocess
import threading
from collections import Counter

import numpy as np
import pytest
from conftest import PYTHON, REPO_ROOT, run_tool, small_cfg

VQA_CONFIG = 'configs/vqa/mmshapes_vqa.py'
AV_CONFIG = 'configs/classification/mmshapes_av.py'


def with_dump(cfg_path: str, pkl: str) -> str:
    """A copy of ``cfg_path`` whose test evaluator also dumps the predictions
    (what ``tools/test.py --out`` does) to ``pkl``."""
    from mmengine.config import Config

    cfg = Config.fromfile(cfg_path)
    evaluators = cfg.test_evaluator
    evaluators = list(evaluators) if isinstance(evaluators, (list, tuple)) else [evaluators]
    cfg.test_evaluator = evaluators + [dict(type='DumpResults', out_file_path=pkl)]
    out = cfg_path.replace('.py', '_dump.py')
    cfg.dump(out)
    return out


def run_on_pty(args, timeout: int = 600) -> str:
    """Run a command with its stdout on a pseudo-terminal (as in an interactive
    shell); returns what it wrote there and to stderr."""
    master, slave = os.openpty()
    env = dict(os.environ, PYTHONUNBUFFERED='1', CUDA_VISIBLE_DEVICES='')
    proc = subprocess.Popen(args, cwd=REPO_ROOT, stdout=slave, stderr=subprocess.PIPE,
                            env=env)
    os.close(slave)
    chunks = []

    def drain():
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:  # the child closed the terminal
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    _, stderr = proc.communicate(timeout=timeout)
    reader.join(timeout=10)
    os.close(master)
    out = b''.join(chunks).decode('utf-8', 'replace')
    assert proc.returncode == 0, f'{args} failed:\n{out[-3000:]}\n{stderr.decode()[-3000:]}'
    return out + stderr.decode()


@pytest.fixture(scope='module')
def vqa_run(mmshapes_root, tmp_path_factory):
    """2 epochs of the VQA quick-start and its test predictions, tested with
    stdout a pipe: (config, work dir, results pickle, what the test printed)."""
    work_dir = str(tmp_path_factory.mktemp('vqa_analysis'))
    cfg = small_cfg(VQA_CONFIG, mmshapes_root, work_dir, max_epochs=2)
    run_tool([PYTHON, 'tools/train.py', cfg, '--work-dir', work_dir])
    pkl = osp.join(work_dir, 'results.pkl')
    proc = run_tool([PYTHON, 'tools/test.py', with_dump(cfg, pkl),
                     osp.join(work_dir, 'epoch_2.pth'), '--work-dir', osp.join(work_dir, 'test')])
    return cfg, work_dir, pkl, proc.stdout


@pytest.fixture(scope='module')
def av_run(mmshapes_root, tmp_path_factory):
    """2 epochs of the audio-visual quick-start, tested on a pseudo-terminal:
    (config, work dir, results pickle, what the test printed)."""
    work_dir = str(tmp_path_factory.mktemp('av_analysis'))
    cfg = small_cfg(AV_CONFIG, mmshapes_root, work_dir, max_epochs=2)
    run_tool([PYTHON, 'tools/train.py', cfg, '--work-dir', work_dir])
    pkl = osp.join(work_dir, 'results.pkl')
    printed = run_on_pty([PYTHON, 'tools/test.py', with_dump(cfg, pkl),
                          osp.join(work_dir, 'epoch_2.pth'), '--work-dir',
                          osp.join(work_dir, 'test')])
    return cfg, work_dir, pkl, printed


def scalar_log(work_dir: str) -> str:
    (path,) = glob.glob(osp.join(work_dir, '2*', 'vis_data', 'scalars.json'))
    return path


def assert_png(path: str) -> tuple:
    """A readable PNG of nonzero size; returns (width, height)."""
    from PIL import Image

    assert osp.isfile(path) and osp.getsize(path) > 0, path
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == 'PNG'
        assert image.width > 0 and image.height > 0
        return image.size


def fails_with_one_line(args) -> str:
    proc = subprocess.run(args, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, CUDA_VISIBLE_DEVICES=''))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith('mmfusion: error: '), proc.stderr
    assert 'Traceback' not in proc.stderr
    return lines[0]


# --------------------------------------------------------------------------
# analyze_logs


def test_plot_curve_draws_train_and_val_keys(vqa_run, tmp_path):
    _, work_dir, _, _ = vqa_run
    out = str(tmp_path / 'curves.png')
    proc = run_tool([PYTHON, 'tools/analysis_tools/analyze_logs.py', 'plot_curve',
                     scalar_log(work_dir), '--keys', 'loss', 'vqa/acc', '--out', out,
                     '--title', 'VQA', '--legend', 'train loss', 'val acc'])
    assert out in proc.stdout
    width, height = assert_png(out)
    # a training and an evaluation panel, one above the other
    assert height > width * 0.8
    # a work dir stands for its newest log
    out2 = str(tmp_path / 'loss.png')
    run_tool([PYTHON, 'tools/analysis_tools/analyze_logs.py', 'plot_curve', work_dir,
              '--keys', 'loss', '--out', out2])
    assert_png(out2)


def test_plot_curve_unknown_key_is_one_error_line(vqa_run, tmp_path):
    _, work_dir, _, _ = vqa_run
    line = fails_with_one_line([PYTHON, 'tools/analysis_tools/analyze_logs.py', 'plot_curve',
                                scalar_log(work_dir), '--keys', 'vqa/accc',
                                '--out', str(tmp_path / 'x.png')])
    assert "'vqa/accc'" in line and 'vqa/acc' in line and 'loss' in line
    line = fails_with_one_line([PYTHON, 'tools/analysis_tools/analyze_logs.py',
                                'cal_train_time', str(tmp_path / 'missing.json')])
    assert 'missing.json' in line


def test_cal_train_time_matches_the_text_log(vqa_run):
    """The per-epoch means of ``time`` agree with the numbers in the text log
    (a different file, written by the logger, parsed here with a regex)."""
    _, work_dir, _, _ = vqa_run
    proc = run_tool([PYTHON, 'tools/analysis_tools/analyze_logs.py', 'cal_train_time',
                     scalar_log(work_dir)])
    (text_log,) = glob.glob(osp.join(work_dir, '2*', '2*.log'))
    by_epoch = {}
    pattern = re.compile(r'Epoch\(train\)\s+\[(\d+)\]\[\s*\d+/\d+\].*?\btime: ([\d.]+)')
    for line in open(text_log, encoding='utf-8'):
        match = pattern.search(line)
        if match:
            by_epoch.setdefault(int(match[1]), []).append(float(match[2]))
    assert sorted(by_epoch) == [1, 2]
    means = {e: statistics.fmean(t[1:]) for e, t in by_epoch.items()}  # first record left out
    average = statistics.fmean(t for times in by_epoch.values() for t in times[1:])
    slowest, fastest = max(means, key=means.get), min(means, key=means.get)

    out = proc.stdout
    got_slow = re.search(r'slowest epoch (\d+), average time is ([\d.]+) s/iter', out)
    got_fast = re.search(r'fastest epoch (\d+), average time is ([\d.]+) s/iter', out)
    got_avg = re.search(r'average iter time: ([\d.]+) s/iter', out)
    assert int(got_slow[1]) == slowest and int(got_fast[1]) == fastest
    # the text log rounds to 4 decimals
    assert float(got_slow[2]) == pytest.approx(means[slowest], abs=2e-4)
    assert float(got_fast[2]) == pytest.approx(means[fastest], abs=2e-4)
    assert float(got_avg[1]) == pytest.approx(average, abs=2e-4)


# --------------------------------------------------------------------------
# get_flops


def test_get_flops_vqa_counts_the_head_exactly(vqa_run, tmp_path):
    cfg, work_dir, _, _ = vqa_run
    out = str(tmp_path / 'flops.json')
    proc = run_tool([PYTHON, 'tools/analysis_tools/get_flops.py', cfg, '--batch-size', '2',
                     '--text-length', '24', '--json-out', out])
    result = json.load(open(out))
    comps = result['components']
    assert set(comps) == {'encoders.image', 'encoders.text', 'fusion', 'head',
                          'data_preprocessor'}
    assert 'image: (2, 3, 64, 64) float32' in result['inputs']
    # questions are padded to the longest of the batch; --text-length pads them further
    assert 'text.input_ids: (2, 24) int64' in result['inputs']
    # the head is one Linear(512, A): B*512*A multiply-adds and 513*A parameters, with A
    # the answers of the training set that tools/train.py wrote beside the checkpoints
    answers = [a for a in open(osp.join(work_dir, 'answer_vocab.txt')).read().split('\n') if a]
    assert comps['head']['flops'] == 2 * 512 * len(answers)
    assert comps['head']['params'] == 513 * len(answers)
    assert sum(c['flops'] for c in comps.values()) == result['flops']
    assert sum(c['params'] for c in comps.values()) == result['params']
    for name in ('encoders.image', 'encoders.text', 'fusion', 'head'):
        assert name in proc.stdout
    assert '+--' in proc.stdout and f'({result["flops"]})' in proc.stdout


def test_get_flops_av_shape_options_and_fusion_count(av_run, tmp_path):
    cfg, _, _, _ = av_run
    out = str(tmp_path / 'flops.json')
    run_tool([PYTHON, 'tools/analysis_tools/get_flops.py', cfg, '--shape', '32',
              '--audio-length', '50', '--json-out', out])
    result = json.load(open(out))
    assert sorted(result['inputs']) == ['audio: (1, 1, 64, 50) float32',
                                        'image: (1, 3, 32, 32) float32']
    comps = result['components']
    # MLB: image 256 -> 1024 and audio 128 -> 1024 projections, then 1024 -> 256
    assert comps['fusion']['flops'] == 256 * 1024 + 128 * 1024 + 1024 * 256
    assert comps['head']['flops'] == 256 * 3
    assert comps['encoders.image']['flops'] > 0 and comps['encoders.audio']['flops'] > 0


def test_get_flops_bad_option_is_one_error_line(vqa_run):
    cfg, _, _, _ = vqa_run
    line = fails_with_one_line([PYTHON, 'tools/analysis_tools/get_flops.py', cfg,
                                '--audio-length', '50'])
    assert '--audio-length' in line and 'audio' in line


# --------------------------------------------------------------------------
# confusion_matrix


def test_confusion_matrix_av_matches_sklearn(av_run, tmp_path):
    from sklearn.metrics import confusion_matrix as sk_confusion_matrix

    cfg, _, pkl, _ = av_run
    out_dir = str(tmp_path / 'cm')
    proc = run_tool([PYTHON, 'tools/analysis_tools/confusion_matrix.py', cfg, pkl,
                     '--out', out_dir, '--show-labels'])
    assert_png(osp.join(out_dir, 'confusion_matrix.png'))
    saved = json.load(open(osp.join(out_dir, 'confusion_matrix.json')))
    assert saved['classes'] == ['circle', 'square', 'triangle']

    results = pickle.load(open(pkl, 'rb'))
    gt = [int(r['gt_label'].reshape(-1)[0]) for r in results]
    pred = [int(r['pred_label'].reshape(-1)[0]) for r in results]
    expected = sk_confusion_matrix(gt, pred, labels=[0, 1, 2])
    assert np.array_equal(np.array(saved['matrix']), expected)
    # the printed tables: the count rows and the accuracy
    for name, row in zip(saved['classes'], expected):
        assert re.search(r'\|\s*' + name + r'\s*\|\s*' + r'\s*\|\s*'.join(map(str, row)),
                         proc.stdout), (name, row)
    accuracy = 100.0 * np.trace(expected) / len(results)
    assert f'{accuracy:.2f} (accuracy)' in proc.stdout


def test_confusion_matrix_vqa_uses_majority_answers(vqa_run, tmp_path):
    from mmfusion.evaluation.functional import normalize_answer

    cfg, _, pkl, _ = vqa_run
    out_dir = str(tmp_path / 'cm')
    run_tool([PYTHON, 'tools/analysis_tools/confusion_matrix.py', cfg, pkl, '--out', out_dir,
              '--max-classes', '8'])
    assert_png(osp.join(out_dir, 'confusion_matrix.png'))
    saved = json.load(open(osp.join(out_dir, 'confusion_matrix.json')))
    matrix = np.array(saved['matrix'])
    results = pickle.load(open(pkl, 'rb'))
    assert matrix.sum() == len(results) and len(saved['classes']) <= 8

    truth = [Counter(map(normalize_answer, r['gt_answers'])).most_common(1)[0][0]
             for r in results]
    preds = [normalize_answer(r['pred_answer']) for r in results]
    kept = set(saved['classes']) - {'(other)'}

    def cls(answer):
        return answer if answer in kept else '(other)'
    correct = sum(cls(t) == cls(p) for t, p in zip(truth, preds))
    assert np.trace(matrix) == correct
    # rows are the true answers: each row sums to that answer's count
    for i, name in enumerate(saved['classes']):
        assert matrix[i].sum() == sum(cls(t) == name for t in truth)


# --------------------------------------------------------------------------
# analyze_results


def test_analyze_results_av_picks_best_and_worst(av_run, tmp_path):
    cfg, _, pkl, _ = av_run
    out_dir = str(tmp_path / 'res')
    topk = 3
    run_tool([PYTHON, 'tools/analysis_tools/analyze_results.py', cfg, pkl,
              '--out-dir', out_dir, '--topk', str(topk)])
    results = pickle.load(open(pkl, 'rb'))
    gt = np.array([int(r['gt_label'].reshape(-1)[0]) for r in results])
    pred = np.array([int(r['pred_label'].reshape(-1)[0]) for r in results])
    true_score = np.array([float(r['pred_score'][g]) for r, g in zip(results, gt)])
    right, wrong = np.flatnonzero(gt == pred), np.flatnonzero(gt != pred)
    best = right[np.argsort(-true_score[right], kind='stable')][:topk]
    worst = wrong[np.argsort(true_score[wrong], kind='stable')][:topk]
    for kind, expected in (('success', best), ('fail', worst)):
        files = sorted(glob.glob(osp.join(out_dir, kind, '*.png')))
        indices = [int(osp.basename(f).split('_')[1]) for f in files]
        assert indices == list(expected), kind
        for f in files:
            width, height = assert_png(f)
            assert osp.getsize(f) < 200_000


def test_analyze_results_vqa_splits_by_accuracy(vqa_run, tmp_path):
    from mmfusion.evaluation.functional import vqa_accuracy

    cfg, _, pkl, _ = vqa_run
    out_dir = str(tmp_path / 'res')
    proc = run_tool([PYTHON, 'tools/analysis_tools/analyze_results.py', cfg, pkl,
                     '--out-dir', out_dir, '--topk', '4'])
    results = pickle.load(open(pkl, 'rb'))
    acc = [vqa_accuracy(r['pred_answer'], r['gt_answers']) for r in results]
    n_right = sum(a >= 1.0 for a in acc)
    success = glob.glob(osp.join(out_dir, 'success', '*.png'))
    fail = glob.glob(osp.join(out_dir, 'fail', '*.png'))
    assert len(success) == min(4, n_right) and len(fail) == min(4, len(acc) - n_right)
    for f in success:
        assert acc[int(osp.basename(f).split('_')[1])] >= 1.0
        assert_png(f)
    for f in fail:
        assert acc[int(osp.basename(f).split('_')[1])] < 1.0
    assert 'VQA acc' in proc.stdout


def test_analyze_results_wrong_config_is_one_error_line(av_run, vqa_run, tmp_path):
    _, _, av_pkl, _ = av_run
    vqa_cfg, _, _, _ = vqa_run
    line = fails_with_one_line([PYTHON, 'tools/analysis_tools/analyze_results.py', vqa_cfg,
                                av_pkl, '--out-dir', str(tmp_path / 'x')])
    assert av_pkl in line and 'test set' in line
    bad = tmp_path / 'bad.pkl'
    bad.write_bytes(b'not a pickle')
    line = fails_with_one_line([PYTHON, 'tools/analysis_tools/confusion_matrix.py', vqa_cfg,
                                str(bad), '--out', str(tmp_path / 'y')])
    assert str(bad) in line and 'not a results pickle' in line


# --------------------------------------------------------------------------
# print_config


def test_print_config_resolves_bases_and_options():
    proc = run_tool([PYTHON, 'tools/misc/print_config.py', AV_CONFIG,
                     '--cfg-options', 'model.fusion.out_dim=384', 'train_cfg.max_epochs=7'])
    out = proc.stdout
    assert "default_scope = 'mmfusion'" in out  # from _base_/default_runtime.py
    assert re.search(r"type='MLBFusion'", out) and 'out_dim=384' in out
    assert 'max_epochs=7' in out and '_base_' not in out
    line = fails_with_one_line([PYTHON, 'tools/misc/print_config.py', 'configs/nope.py'])
    assert 'configs/nope.py' in line


# --------------------------------------------------------------------------
# progress bar


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class FakeRunner:
    def __init__(self, batches: int) -> None:
        self.val_dataloader = list(range(batches))
        self.test_dataloader = list(range(batches))


def test_eval_progress_hook_draws_on_a_terminal_only():
    from mmfusion.engine import EvalProgressHook

    runner = FakeRunner(4)
    terminal = FakeTerminal()
    hook = EvalProgressHook(stream=terminal)
    hook.before_test_epoch(runner)
    for i in range(4):
        hook.after_test_iter(runner, i)
    hook.after_test_epoch(runner)
    drawn = terminal.getvalue()
    assert drawn.startswith('[') and '] 4/4, ' in drawn and drawn.endswith('\n')
    assert drawn.count('\r') == 4  # one redraw per batch

    piped = io.StringIO()  # a file or a pipe: nothing, the log stays readable
    hook = EvalProgressHook(stream=piped)
    hook.before_val_epoch(runner)
    hook.after_val_iter(runner, 0)
    hook.after_val_epoch(runner)
    assert piped.getvalue() == ''
    forced = io.StringIO()
    hook = EvalProgressHook(phases=['val'], only_tty=False, stream=forced)
    hook.before_test_epoch(runner)  # not asked for
    hook.after_test_iter(runner, 0)
    assert forced.getvalue() == ''
    hook.before_val_epoch(runner)
    hook.after_val_iter(runner, 0)
    assert '1/4' in forced.getvalue()

    from mmfusion.errors import ConfigError
    with pytest.raises(ConfigError, match='phases'):
        EvalProgressHook(phases=['train'])


def test_test_tool_shows_progress_on_a_terminal(av_run, vqa_run):
    _, work_dir, _, printed = av_run
    results = pickle.load(open(av_run[2], 'rb'))
    batches = -(-len(results) // 16)  # the small configs test in batches of 16
    assert re.search(r'\[>+\] ' + f'{batches}/{batches}, ', printed), printed[-2000:]
    # with stdout not a terminal (the VQA test ran with a pipe), no bar in the output
    # and none in any log file
    _, vqa_dir, _, vqa_printed = vqa_run
    assert '\r' not in vqa_printed and '>>>' not in vqa_printed
    for log in glob.glob(osp.join(vqa_dir, 'test', '2*', '*.log')) + glob.glob(
            osp.join(work_dir, 'test', '2*', '*.log')):
        assert '\r' not in open(log, encoding='utf-8').read()
