"""Visual checks: the visualizer draws boxes, label maps, the prompt and depth
where they belong, browse_dataset draws a config's samples and
``tools/test.py --show-dir`` draws every test sample."""
import glob
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from conftest import PYTHON, SMALL_MMSHAPES, run_tool, small_cfg
from mmengine.structures import InstanceData, PixelData

from mmfusion.structures import MultiModalDataSample
from mmfusion.visualization import MultiModalVisualizationHook, MultiModalVisualizer

SIZE = 64  # MMShapes pictures; drawn 4x larger (256 px)
PANEL = 256
GAP = 6  # between panels


def visualizer(classes=('circle', 'square')) -> MultiModalVisualizer:
    vis = MultiModalVisualizer(name='test_visualization')
    vis.dataset_meta = dict(classes=classes)
    return vis


def grey_image() -> np.ndarray:
    return np.full((SIZE, SIZE, 3), 200, dtype=np.uint8)


def with_instances(boxes, labels, scores=None, field='gt_instances', text=None):
    sample = MultiModalDataSample()
    instances = InstanceData(bboxes=torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                             labels=torch.tensor(labels, dtype=torch.long))
    if scores is not None:
        instances.scores = torch.tensor(scores, dtype=torch.float32)
    setattr(sample, field, instances)
    if text is not None:
        sample.set_metainfo(dict(text=text))
    return sample


def changed_box(drawn: np.ndarray, plain: np.ndarray):
    """(x0, y0, x1, y1) of the pixels that differ between two drawings."""
    ys, xs = np.nonzero(np.any(drawn != plain, axis=-1))
    return xs.min(), ys.min(), xs.max(), ys.max()


def test_box_is_drawn_enlarged_where_it_is():
    vis = visualizer()
    drawn = vis.add_datasample('s', grey_image(), with_instances([[8, 12, 40, 44]], [1]),
                               draw_pred=False)
    plain = vis.add_datasample('s', grey_image(), with_instances([], []), draw_pred=False)
    assert drawn.shape == plain.shape and plain.shape[1] == PANEL
    top = plain.shape[0] - PANEL  # the title band above the panel
    x0, y0, x1, y1 = changed_box(drawn, plain)
    # the 32 px box at (8, 12) becomes 128 px at (32, 48), outline 2 px wide
    assert abs(x0 - 32) <= 2 and abs(y0 - top - 48) <= 2
    assert abs(x1 - 160) <= 2 and abs(y1 - top - 176) <= 2


def test_predictions_at_most_the_threshold_are_left_out():
    vis = visualizer()
    both = with_instances([[8, 8, 30, 30], [34, 34, 60, 60]], [0, 1], [0.9, 0.2],
                          field='pred_instances')
    confident = with_instances([[8, 8, 30, 30]], [0], [0.9], field='pred_instances')
    nothing = with_instances([], [], [], field='pred_instances')
    drawn = vis.add_datasample('s', grey_image(), both, pred_score_thr=0.3)
    assert np.array_equal(drawn, vis.add_datasample('s', grey_image(), confident))
    assert not np.array_equal(drawn, vis.add_datasample('s', grey_image(), nothing))
    assert drawn.shape[1] == PANEL  # no ground truth: the prediction panel alone


def test_ground_truth_and_prediction_side_by_side():
    sample = with_instances([[8, 8, 30, 30]], [0])
    sample.pred_instances = InstanceData(bboxes=torch.tensor([[8., 8., 30., 30.]]),
                                         labels=torch.tensor([1]), scores=torch.tensor([0.8]))
    drawn = visualizer().add_datasample('s', grey_image(), sample)
    assert drawn.shape[1] == 2 * PANEL + GAP
    only_gt = visualizer().add_datasample('s', grey_image(), sample, draw_pred=False)
    assert np.array_equal(drawn[:, :PANEL], only_gt)


def test_prompt_is_a_caption_band_above_the_picture():
    vis = visualizer()
    plain = vis.add_datasample('s', grey_image(), with_instances([[8, 12, 40, 44]], [1]))
    captioned = vis.add_datasample('s', grey_image(),
                                   with_instances([[8, 12, 40, 44]], [1], text='the red circle'))
    band = captioned.shape[0] - plain.shape[0]
    assert band > 0 and captioned.shape[1] == plain.shape[1]
    # the picture is moved down, not covered, and the band holds dark text
    assert np.array_equal(captioned[band:], plain)
    assert (captioned[:band].max(axis=-1) < 100).sum() > 20


def test_label_map_colours_the_class_but_not_background():
    vis = visualizer(classes=('background', 'object'))
    labels = torch.zeros(1, SIZE, SIZE, dtype=torch.long)
    labels[0, 16:48, 16:48] = 1
    sample, empty = MultiModalDataSample(), MultiModalDataSample()
    sample.gt_sem_seg = PixelData(data=labels)
    empty.gt_sem_seg = PixelData(data=torch.zeros_like(labels))
    drawn = vis.add_datasample('s', grey_image(), sample)
    plain = vis.add_datasample('s', grey_image(), empty)
    top = plain.shape[0] - PANEL
    x0, y0, x1, y1 = changed_box(drawn, plain)
    # the 32 px square at 16 becomes 64..191, its outline up to 1 px wider
    assert abs(x0 - 64) <= 1 and abs(y0 - top - 64) <= 1
    assert abs(x1 - 191) <= 1 and abs(y1 - top - 191) <= 1
    # inside: the palette colour of class 1 blended into the grey
    assert not np.array_equal(drawn[top + 80, 80], plain[top + 80, 80])


def test_depth_panel_beside_the_picture_near_is_red():
    depth = np.zeros((SIZE, SIZE), dtype=np.float32)
    depth[:, :32] = 2.0
    depth[:, 32:] = 8.0
    depth[:8, :8] = 0  # no reading
    sample = with_instances([[8, 8, 30, 30]], [0])
    drawn = visualizer().add_datasample('s', grey_image(), sample, depth=depth)
    assert drawn.shape[1] == 2 * PANEL + GAP
    panel = drawn[drawn.shape[0] - PANEL:, PANEL + GAP:].astype(int)
    near, far, none = panel[128, 60], panel[128, 200], panel[4, 4]
    assert near[0] > near[2] and far[2] > far[0]
    assert none.tolist() == [0, 0, 0]


def test_png_is_written_in_the_right_channel_order(tmp_path):
    red = np.zeros((SIZE, SIZE, 3), dtype=np.uint8)
    red[..., 0] = 255  # RGB
    out = str(tmp_path / 'sub' / 'red.png')
    drawn = visualizer().add_datasample('s', red, with_instances([], []), out_file=out)
    written = cv2.imread(out)  # BGR
    assert np.array_equal(written[..., ::-1], drawn)
    assert written[-10, 10].tolist() == [0, 0, 255]


def test_hook_maps_ground_truth_boxes_of_a_resized_input_back():
    sample = with_instances([[20, 40, 60, 80]], [0])
    sample.set_metainfo(dict(scale_factor=(2.0, 4.0)))
    mapped = MultiModalVisualizationHook._gt_to_original(sample)
    assert mapped.gt_instances.bboxes.tolist() == [[10, 10, 30, 20]]
    assert sample.gt_instances.bboxes.tolist() == [[20, 40, 60, 80]]  # a copy was changed


@pytest.mark.parametrize('config, phase, panels', [
    ('configs/detection/mmshapes_rgbd_det.py', 'train', 2),  # ground truth, depth
    ('configs/segmentation/mmshapes_ref_seg.py', 'val', 2),
])
def test_browse_dataset_writes_one_png_per_sample(mmshapes_root, tmp_path, config, phase,
                                                 panels):
    cfg = small_cfg(config, mmshapes_root, str(tmp_path))
    out = str(tmp_path / 'browse')
    run_tool([PYTHON, 'tools/misc/browse_dataset.py', cfg, '--not-show', '--output-dir', out,
              '--max-samples', '3', '--phase', phase])
    files = sorted(glob.glob(osp.join(out, '*.png')))
    assert len(files) == 3
    for path in files:
        assert cv2.imread(path).shape[1] == panels * PANEL + (panels - 1) * GAP


def test_test_tool_show_dir_draws_every_test_sample(mmshapes_root, tmp_path):
    work_dir = str(tmp_path)
    cfg = small_cfg('configs/detection/mmshapes_rgbd_det.py', mmshapes_root, work_dir,
                    max_epochs=1)
    run_tool([PYTHON, 'tools/train.py', cfg, '--work-dir', work_dir])
    test_dir = osp.join(work_dir, 'test')
    run_tool([PYTHON, 'tools/test.py', cfg, osp.join(work_dir, 'epoch_1.pth'),
              '--work-dir', test_dir, '--show-dir', 'vis', '--show-score-thr', '0.2'])
    files = sorted(glob.glob(osp.join(test_dir, 'vis', '*.png')))
    assert len(files) == SMALL_MMSHAPES['num_val']
    # ground truth | prediction | depth
    assert cv2.imread(files[0]).shape[1] == 3 * PANEL + 2 * GAP
