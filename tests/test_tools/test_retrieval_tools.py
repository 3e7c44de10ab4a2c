"""The retrieval configs end to end on the small MMShapes copy: contrastive training
with retrieval validation, then zero-shot colour classification with a linear probe."""
import json
import os.path as osp

import pytest
from conftest import PYTHON, REPO_ROOT, run_tool, small_cfg

ENV = dict(PYTHONPATH=REPO_ROOT)  # the tools import mmfusion from this checkout


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_train_then_zero_shot(mmshapes_root, tmp_path):
    work = str(tmp_path / 'clip')
    cfg = small_cfg('configs/retrieval/mmshapes_clip.py', mmshapes_root, work, max_epochs=1,
                    extra={'train_cfg.val_interval': 1,
                           'default_hooks.checkpoint.interval': 1})
    out = run_tool([PYTHON, 'tools/train.py', cfg, '--work-dir', work], env=ENV)
    assert 'retrieval/i2t_R@1' in out.stdout + out.stderr
    ckpt = osp.join(work, 'epoch_1.pth')
    assert osp.isfile(ckpt)

    zs = small_cfg('configs/retrieval/mmshapes_clip_zeroshot_colors.py', mmshapes_root,
                   str(tmp_path / 'zs'))
    run_tool([PYTHON, 'tools/analysis_tools/zero_shot.py', zs, ckpt, '--work-dir',
              str(tmp_path / 'zs'), '--linear-probe'], env=ENV)
    metrics = json.load(open(tmp_path / 'zs' / 'zero_shot_metrics.json'))
    assert 0 <= metrics['multi-label/mAP'] <= 100
    assert 0 <= metrics['linear_probe/multi-label/mAP'] <= 100
    # tools/test.py evaluates the same zero-shot classifier with the same metric
    run_tool([PYTHON, 'tools/test.py', zs, ckpt, '--work-dir', str(tmp_path / 'zs_test')],
             env=ENV)
    tested = json.load(open(tmp_path / 'zs_test' / 'metrics.json'))
    assert tested['multi-label/mAP'] == pytest.approx(metrics['multi-label/mAP'], abs=1e-3)


def test_zero_shot_tool_refuses_another_model(tmp_path):
    ckpt = tmp_path / 'x.pth'
    ckpt.write_bytes(b'')
    with pytest.raises(AssertionError, match='model.type must be "ZeroShotClassifier"'):
        run_tool([PYTHON, 'tools/analysis_tools/zero_shot.py',
                  osp.join(REPO_ROOT, 'configs/retrieval/mmshapes_clip.py'), str(ckpt)], env=ENV)
