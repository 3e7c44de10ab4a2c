"""tools/infer.py on a detection model: printed boxes, --json, --show drawing."""
import json
import os.path as osp

import mmcv
import numpy as np
import pytest
from conftest import PYTHON, REPO_ROOT, run_tool
from test_apis.tiny_checkpoints import tiny_checkpoint

DET = 'configs/detection/mmshapes_rgbd_det.py'


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_infer_tool_detects_and_draws_boxes(mmshapes_root, tmp_path):
    cfg, ckpt = tiny_checkpoint(DET, mmshapes_root, str(tmp_path / 'det'),
                                options={'model.head.score_thr': 0.0,
                                         'model.head.max_per_img': 3})
    image = osp.join(mmshapes_root, 'images', 'val', '1000001.png')
    depth = osp.join(mmshapes_root, 'depth', 'val', '1000001.png')
    batch = tmp_path / 'inputs.jsonl'
    batch.write_text(json.dumps(dict(image=image, depth=depth)) + '\n'
                     + json.dumps(dict(image=image, depth=depth)) + '\n')
    out_dir = str(tmp_path / 'vis')
    proc = run_tool([PYTHON, 'tools/infer.py', cfg, ckpt, '--batch', str(batch), '--json',
                     '--show', '--out-dir', out_dir, '--score-thr', '0'])
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith('{')]
    assert len(lines) == 2 and lines[0]['prediction'] == lines[1]['prediction']
    pred = lines[0]['prediction']
    assert len(pred['bboxes']) == 3 and len(pred['label_names']) == 3
    assert all(0 <= v <= 64 for box in pred['bboxes'] for v in box)
    drawn = mmcv.imread(osp.join(out_dir, '0000_1000001.png'))
    assert drawn.shape[1] > drawn.shape[0]  # the picture and the depth panel

    # the same drawing with every box under the threshold: only the boxes differ
    import importlib.util

    from mmfusion.apis import MultiModalInferencer
    spec = importlib.util.spec_from_file_location('infer_tool',
                                                  osp.join(REPO_ROOT, 'tools', 'infer.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    inferencer = MultiModalInferencer(cfg, ckpt, device='cpu')
    item = dict(image=image, depth=depth)
    sample = inferencer(item, return_datasamples=True)[0]
    with_boxes = mmcv.imread(tool.show(inferencer, item, sample, str(tmp_path / 'a'), 0, 0.0))
    without = mmcv.imread(tool.show(inferencer, item, sample, str(tmp_path / 'b'), 0, 1.0))
    np.testing.assert_array_equal(with_boxes, drawn)
    changed = np.abs(with_boxes.astype(int) - without.astype(int)).sum(axis=2) > 0
    assert changed.sum() > 200
    # and only on the picture, not on the depth panel to its right
    assert not changed[:, drawn.shape[1] // 2 + 10:].any()
