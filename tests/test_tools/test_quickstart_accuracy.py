"""The README's quick-start result: minutes of CPU training, >= 70 VQA accuracy."""
import json
import os.path as osp

import pytest
from conftest import PYTHON, REPO_ROOT, run_tool


@pytest.mark.slow
def test_quickstart_reaches_70_and_beats_question_only(tmp_path):
    config = osp.join(REPO_ROOT, 'configs', 'vqa', 'mmshapes_vqa.py')
    ablation = osp.join(REPO_ROOT, 'configs', 'vqa', 'mmshapes_vqa_question_only.py')
    scores = {}
    for name, cfg in (('full', config), ('question_only', ablation)):
        work_dir = str(tmp_path / name)
        run_tool([PYTHON, osp.join(REPO_ROOT, 'tools', 'train.py'), cfg, '--work-dir', work_dir],
                 cwd=str(tmp_path), timeout=1200)
        run_tool([PYTHON, osp.join(REPO_ROOT, 'tools', 'test.py'), cfg,
                  osp.join(work_dir, 'epoch_12.pth'), '--work-dir', work_dir],
                 cwd=str(tmp_path), timeout=600)
        scores[name] = json.load(open(osp.join(work_dir, 'metrics.json')))['vqa/acc']
    assert scores['full'] >= 70.0
    assert scores['full'] - scores['question_only'] >= 20.0
