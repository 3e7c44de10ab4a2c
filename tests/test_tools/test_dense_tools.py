"""Detection and segmentation through the tools on a small MMShapes copy: every
quick-start config and its baseline trains and tests, 2-process CPU training
works for one detection and one segmentation config, and the full schedules
reach the issue's targets (slow)."""
import json
import os.path as osp

import pytest
import torch
from conftest import PYTHON, run_tool, small_cfg

from mmfusion.engine import load_checkpoint_file

METRIC_KEYS = {
    'det': {'coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/bbox_mAP_75', 'coco/bbox_mAP_s'},
    'seg': {'seg/mIoU', 'seg/mAcc', 'seg/aAcc'},
    'refseg': {'refseg/IoU', 'refseg/mIoU', 'refseg/Pr@0.5'},
}
CONFIGS = [
    ('configs/detection/mmshapes_rgbd_det.py', 'det'),
    ('configs/detection/mmshapes_rgbd_det_rgb_only.py', 'det'),
    ('configs/detection/mmshapes_ref_det.py', 'det'),
    ('configs/detection/mmshapes_ref_det_rgb_only.py', 'det'),
    ('configs/segmentation/mmshapes_rgbd_seg.py', 'seg'),
    ('configs/segmentation/mmshapes_rgbd_seg_rgb_only.py', 'seg'),
    ('configs/segmentation/mmshapes_ref_seg.py', 'refseg'),
    ('configs/segmentation/mmshapes_ref_seg_rgb_only.py', 'refseg'),
]


@pytest.mark.parametrize('config, task', CONFIGS)
def test_train_and_test_write_dense_metrics(mmshapes_root, tmp_path, config, task):
    work_dir = str(tmp_path)
    cfg = small_cfg(config, mmshapes_root, work_dir, max_epochs=1)
    run_tool([PYTHON, 'tools/train.py', cfg, '--work-dir', work_dir])
    out = osp.join(work_dir, 'test')
    run_tool([PYTHON, 'tools/test.py', cfg, osp.join(work_dir, 'epoch_1.pth'),
              '--work-dir', out])
    metrics = json.load(open(osp.join(out, 'metrics.json')))
    assert METRIC_KEYS[task] <= set(metrics)
    if task == 'det':
        assert all(-1.0 <= metrics[k] <= 1.0 for k in METRIC_KEYS['det'])
    else:
        assert all(0.0 <= metrics[k] <= 100.0 for k in METRIC_KEYS[task])


@pytest.mark.parametrize('config', ['configs/detection/mmshapes_rgbd_det.py',
                                    'configs/segmentation/mmshapes_rgbd_seg.py'])
def test_dist_train_two_cpu_processes(mmshapes_root, tmp_path, config):
    work_dir = str(tmp_path / 'dist')
    cfg = small_cfg(config, mmshapes_root, work_dir, max_epochs=1)
    proc = run_tool(['bash', 'tools/dist_train.sh', cfg, '2', '--work-dir', work_dir],
                    timeout=600)
    assert 'Distributed training is not used' not in proc.stdout + proc.stderr
    ckpt = load_checkpoint_file(osp.join(work_dir, 'epoch_1.pth'))
    assert not any(k.startswith('module.') for k in ckpt['state_dict'])
    # each rank sees half of the 48 training pictures: 48 / (2 * 16) = 2 iterations
    assert ckpt['meta']['iter'] == 2
    assert all(torch.isfinite(v).all() for v in ckpt['state_dict'].values()
               if torch.is_tensor(v) and v.is_floating_point())


def last_val(log_dir: str, key: str) -> float:
    """The last epoch's value of ``key`` in the run's scalars.json."""
    import glob
    path = sorted(glob.glob(osp.join(log_dir, '*', 'vis_data', 'scalars.json')))[-1]
    values = [json.loads(line)[key] for line in open(path) if key in line]
    return values[-1]


@pytest.mark.slow
# two full trainings: the project-wide 900 s limit is for one tool run, not two
@pytest.mark.timeout(2 * 1800)
@pytest.mark.parametrize('config, baseline, key, target, gap', [
    ('detection/mmshapes_rgbd_det.py', 'detection/mmshapes_rgbd_det_rgb_only.py',
     'coco/bbox_mAP_50', 0.5, 0.2),
    ('detection/mmshapes_ref_det.py', 'detection/mmshapes_ref_det_rgb_only.py',
     'coco/bbox_mAP_50', 0.5, 0.2),
    ('segmentation/mmshapes_rgbd_seg.py', 'segmentation/mmshapes_rgbd_seg_rgb_only.py',
     'seg/mIoU', 60.0, 10.0),
    ('segmentation/mmshapes_ref_seg.py', 'segmentation/mmshapes_ref_seg_rgb_only.py',
     'refseg/IoU', 50.0, 10.0),
])
def test_full_schedule_reaches_the_target_and_beats_the_baseline(tmp_path, config, baseline, key,
                                                                 target, gap):
    """The quick-start schedules on the default MMShapes copy (minutes each)."""
    scores = {}
    for name in (config, baseline):
        work_dir = str(tmp_path / osp.basename(name)[:-3])
        run_tool([PYTHON, 'tools/train.py', f'configs/{name}', '--work-dir', work_dir],
                 timeout=1800)
        scores[name] = last_val(work_dir, key)
    assert scores[config] >= target, scores
    assert scores[config] - scores[baseline] >= gap, scores
