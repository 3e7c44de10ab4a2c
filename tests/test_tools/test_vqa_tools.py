"""End to end through the command-line tools on a small MMShapes copy:
train, resume, test (metrics.json), infer, distributed training on CPU."""
import glob
import json
import os.path as osp

import pytest
import torch
from conftest import PYTHON, REPO_ROOT, run_tool, small_cfg

CONFIG = 'configs/vqa/mmshapes_vqa.py'


@pytest.fixture(scope='module')
def trained(mmshapes_root, tmp_path_factory):
    """A 2-epoch run; returns (config path, work dir)."""
    work_dir = str(tmp_path_factory.mktemp('vqa_full'))
    cfg = small_cfg(CONFIG, mmshapes_root, work_dir, max_epochs=2)
    run_tool([PYTHON, 'tools/train.py', cfg, '--work-dir', work_dir])
    return cfg, work_dir


def float_state(path: str) -> dict:
    state = torch.load(path, map_location='cpu')['state_dict']
    return {k: v for k, v in state.items() if torch.is_tensor(v) and v.is_floating_point()}


def test_train_writes_checkpoints_vocabularies_and_config(trained):
    _, work_dir = trained
    for name in ('epoch_1.pth', 'epoch_2.pth', 'last_checkpoint', 'answer_vocab.txt',
                 'tokenizer_text/tokenizer.json'):
        assert osp.exists(osp.join(work_dir, name)), name
    answers = open(osp.join(work_dir, 'answer_vocab.txt')).read().split('\n')
    assert {'yes', 'no', 'red', 'circle', '2'} <= set(answers)
    # plain torch.load (weights_only=True by default, nothing allow-listed) opens it
    ckpt = torch.load(osp.join(work_dir, 'epoch_2.pth'), weights_only=True)
    assert ckpt['meta']['epoch'] == 2
    from mmfusion.utils import decode_extra_state
    stored = decode_extra_state(ckpt['state_dict']['head._extra_state'])['answers']
    assert stored == [a for a in answers if a]


def test_resume_continues_exactly(trained, mmshapes_root, tmp_path):
    """Stopped after epoch 1 and resumed to 2 == an uninterrupted 2-epoch run."""
    cfg_full, full_dir = trained
    work_dir = str(tmp_path / 'resumed')
    cfg_1 = small_cfg(CONFIG, mmshapes_root, work_dir, max_epochs=1)
    run_tool([PYTHON, 'tools/train.py', cfg_1, '--work-dir', work_dir])
    assert not osp.exists(osp.join(work_dir, 'epoch_2.pth'))
    # the same command with two epochs and a bare --resume picks up epoch_1.pth
    run_tool([PYTHON, 'tools/train.py', cfg_full, '--work-dir', work_dir, '--resume'])

    resumed = float_state(osp.join(work_dir, 'epoch_2.pth'))
    uninterrupted = float_state(osp.join(full_dir, 'epoch_2.pth'))
    assert resumed.keys() == uninterrupted.keys()
    for key in resumed:
        torch.testing.assert_close(resumed[key], uninterrupted[key], rtol=1e-5, atol=1e-6,
                                   msg=lambda m: f'{key}: {m}')
    # and the run really trained: weights moved away from epoch 1
    epoch1 = float_state(osp.join(work_dir, 'epoch_1.pth'))
    assert any(not torch.equal(epoch1[k], resumed[k]) for k in resumed)


def test_test_tool_prints_table_and_writes_flat_metrics_json(trained, tmp_path):
    cfg, work_dir = trained
    out_dir = str(tmp_path / 'test_out')
    proc = run_tool([PYTHON, 'tools/test.py', cfg, osp.join(work_dir, 'epoch_2.pth'),
                     '--work-dir', out_dir])
    assert 'vqa/acc' in proc.stdout and '+--' in proc.stdout  # a terminaltables table
    metrics = json.load(open(osp.join(out_dir, 'metrics.json')))
    assert set(metrics) >= {'vqa/acc', 'vqa/acc_yes_no', 'vqa/acc_number', 'vqa/acc_other'}
    assert all(isinstance(v, float) and 0.0 <= v <= 100.0 for v in metrics.values())


def test_infer_tool_answers_from_the_answer_vocabulary(trained, mmshapes_root):
    cfg, work_dir = trained
    image = sorted(glob.glob(osp.join(mmshapes_root, 'images', 'val', '*.png')))[0]
    proc = run_tool([PYTHON, 'tools/infer.py', cfg, osp.join(work_dir, 'epoch_2.pth'),
                     '--image', image, '--question', 'how many circles are there?'])
    out = proc.stdout.strip().splitlines()
    start = next(i for i, line in enumerate(out) if line.startswith('Q: how many circles'))
    lines = [line.split() for line in out[start + 1:]]
    answers = set(open(osp.join(work_dir, 'answer_vocab.txt')).read().split())
    assert len(lines) == 5
    assert all(line[0] in answers and 0.0 <= float(line[-1]) <= 1.0 for line in lines)
    scores = [float(line[-1]) for line in lines]
    assert scores == sorted(scores, reverse=True)


def test_inferencer_matches_the_test_loop(trained, mmshapes_root):
    """The Python API gives the same answers as evaluation through the Runner."""
    from mmengine.config import Config

    from mmfusion.apis import MultiModalInferencer
    from mmfusion.datasets import MMShapesVQADataset

    cfg, work_dir = trained
    inferencer = MultiModalInferencer(cfg, osp.join(work_dir, 'epoch_2.pth'), device='cpu')
    dataset = MMShapesVQADataset(split='val', data_root=mmshapes_root,
                                 mmshapes=Config.fromfile(cfg).val_dataloader.dataset.mmshapes,
                                 pipeline=[])
    import mmcv
    infos = [dataset.get_data_info(i) for i in range(6)]
    by_path = inferencer([dict(image=d['img_path'], text=d['question']) for d in infos])
    by_array = inferencer([dict(image=mmcv.imread(d['img_path']), text=d['question'])
                           for d in infos])
    assert [r['pred_answer'] for r in by_path] == [r['pred_answer'] for r in by_array]
    for a, b in zip(by_path, by_array):
        assert a['topk_scores'] == pytest.approx(b['topk_scores'], abs=1e-5)


def test_dist_train_two_cpu_processes(mmshapes_root, tmp_path):
    work_dir = str(tmp_path / 'dist')
    cfg = small_cfg(CONFIG, mmshapes_root, work_dir, max_epochs=1)
    proc = run_tool(['bash', 'tools/dist_train.sh', cfg, '2', '--work-dir', work_dir],
                    timeout=600)
    log = proc.stdout + proc.stderr
    assert 'Distributed training is not used' not in log
    assert osp.exists(osp.join(work_dir, 'epoch_1.pth'))
    ckpt = torch.load(osp.join(work_dir, 'epoch_1.pth'))
    # DDP wrappers are stripped: keys are the plain model's
    assert not any(k.startswith('module.') for k in ckpt['state_dict'])
    # each rank sees half of the 192 training questions per epoch: 192 / (2 * 16) = 6 iters
    assert ckpt['meta']['iter'] == 6
    from mmengine.config import Config
    dumped = Config.fromfile(osp.join(work_dir, osp.basename(cfg)))
    assert dumped.env_cfg.dist_cfg.backend == 'gloo'


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the message on CPU-only machines')
def test_amp_without_gpu_is_a_clear_error(mmshapes_root, tmp_path):
    import subprocess

    cfg = small_cfg(CONFIG, mmshapes_root, str(tmp_path), max_epochs=1)
    proc = subprocess.run([PYTHON, 'tools/train.py', cfg, '--amp', '--work-dir', str(tmp_path)],
                          capture_output=True, text=True, timeout=300, cwd=REPO_ROOT)
    assert proc.returncode != 0
    assert '--amp needs a GPU' in proc.stderr
    assert 'Traceback' not in proc.stderr
