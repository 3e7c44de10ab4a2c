"""MultiModalInferencer for every task: the derived pipeline equals the test
pipeline minus annotation loading, inputs as paths or arrays, batches."""
import os.path as osp

import mmcv
import numpy as np
import pytest
import torch
from mmengine.dataset import pseudo_collate
from test_apis.tiny_checkpoints import tiny_checkpoint

DET = 'configs/detection/mmshapes_rgbd_det.py'
REF_SEG = 'configs/segmentation/mmshapes_ref_seg.py'
VQA = 'configs/vqa/mmshapes_vqa.py'
AV = 'configs/classification/mmshapes_av.py'
# an untrained FCOS head scores about prior_prob: keep those candidates
LOW_THR = {'model.head.score_thr': 0.0, 'model.head.max_per_img': 5}


@pytest.fixture(scope='module')
def det(mmshapes_root, tmp_path_factory):
    from mmfusion.apis import MultiModalInferencer
    cfg, ckpt = tiny_checkpoint(DET, mmshapes_root, str(tmp_path_factory.mktemp('det')),
                                options=LOW_THR)
    return MultiModalInferencer(cfg, ckpt, device='cpu'), cfg


@pytest.fixture(scope='module')
def ref_seg(mmshapes_root, tmp_path_factory):
    from mmfusion.apis import MultiModalInferencer
    cfg, ckpt = tiny_checkpoint(REF_SEG, mmshapes_root, str(tmp_path_factory.mktemp('seg')))
    return MultiModalInferencer(cfg, ckpt, device='cpu'), cfg


def test_pipeline_drops_only_annotation_loading(det):
    from mmengine.config import Config

    from mmfusion.apis.inferencer import inference_pipeline
    inferencer, cfg = det
    full = [s['type'] for s in Config.fromfile(cfg).test_dataloader.dataset.pipeline]
    derived = [s['type'] for s in inference_pipeline(Config.fromfile(cfg))]
    assert 'LoadAnnotations' in full
    assert derived == [t for t in full if t != 'LoadAnnotations']
    assert sorted(inferencer.metadata()['modalities']) == ['depth', 'image']
    assert inferencer.metadata()['inputs'] == dict(image='image', depth='map')


def _dataset(cfg_path, index_count=3):
    from mmengine.config import Config

    from mmfusion.registry import DATASETS
    cfg = Config.fromfile(cfg_path)
    dataset = DATASETS.build(cfg.test_dataloader.dataset)  # with LoadAnnotations
    return dataset, [dataset.get_data_info(i) for i in range(index_count)]


def test_detection_equals_the_test_loop_on_paths_and_arrays(det):
    """Boxes from raw inputs == the model run on the dataset's own test pipeline."""
    inferencer, cfg = det
    dataset, infos = _dataset(cfg)
    with torch.inference_mode():
        expected = inferencer.model.test_step(pseudo_collate([dataset[i] for i in range(3)]))
    by_path = inferencer([dict(image=d['img_path'], depth=d['depth_path']) for d in infos])
    depth = [mmcv.imread(d['depth_path'], flag='unchanged').astype(np.float32) * 0.001
             for d in infos]
    by_array = inferencer([dict(image=mmcv.imread(d['img_path']), depth=m)
                           for d, m in zip(infos, depth)], batch_size=2)
    for want, got_path, got_array in zip(expected, by_path, by_array):
        boxes = want.pred_instances.bboxes.tolist()
        assert len(boxes) == 5  # score_thr 0: max_per_img boxes
        np.testing.assert_allclose(got_path['bboxes'], boxes, atol=1e-4)
        np.testing.assert_allclose(got_array['bboxes'], boxes, atol=1e-4)
        assert got_path['labels'] == want.pred_instances.labels.tolist()
        names = inferencer.classes
        assert names is not None and len(names) == 6
        assert got_path['label_names'] == [names[i] for i in got_path['labels']]


def test_referring_segmentation_gives_a_mask_per_input(ref_seg):
    inferencer, cfg = ref_seg
    dataset, infos = _dataset(cfg)
    with torch.inference_mode():
        expected = inferencer.model.test_step(pseudo_collate([dataset[i] for i in range(3)]))
    out = inferencer([dict(image=d['img_path'], depth=d['depth_path'], text=d['text'])
                      for d in infos])
    for want, got in zip(expected, out):
        assert got['sem_seg'].shape == (64, 64) and got['sem_seg'].dtype == np.int64
        np.testing.assert_array_equal(got['sem_seg'], want.pred_sem_seg.data[0].numpy())
        assert got['classes'] == list(inferencer.classes)
    # the expression matters: another one changes the mask of the same picture
    d = infos[0]
    other = inferencer(dict(image=d['img_path'], depth=d['depth_path'],
                            text='the farthest blue triangle'))[0]
    assert other['sem_seg'].shape == out[0]['sem_seg'].shape


def test_vqa_and_audio_visual_take_arrays_and_paths(mmshapes_root, tmp_path):
    from mmfusion.apis import MultiModalInferencer
    from mmfusion.datasets.transforms.audio import LoadAudioFromFile

    cfg, ckpt = tiny_checkpoint(AV, mmshapes_root, str(tmp_path / 'av'))
    inferencer = MultiModalInferencer(cfg, ckpt, device='cpu')
    dataset, infos = _dataset(cfg, 2)
    wav = LoadAudioFromFile(sample_rate=16000).load(infos[0]['audio_path'])[0][0]
    by_path = inferencer(dict(image=infos[0]['img_path'], audio=infos[0]['audio_path']))[0]
    by_array = inferencer(dict(image=mmcv.imread(infos[0]['img_path']), audio=wav))[0]
    # (waveform, rate) at another rate is resampled to the pipeline's
    from mmfusion.datasets.transforms.audio import resample_audio
    wav8k = resample_audio(wav[None], 16000, 8000)[0]
    by_8k = inferencer(dict(image=infos[0]['img_path'], audio=(wav8k, 8000)))[0]
    assert by_path['pred_score'] == pytest.approx(by_array['pred_score'], abs=1e-6)
    assert by_8k['pred_score'] == pytest.approx(by_path['pred_score'], abs=0.05)
    assert by_path['pred_class'] in ('circle', 'square', 'triangle')
    assert by_path['pred_label'] == int(np.argmax(by_path['pred_score']))

    cfg, ckpt = tiny_checkpoint(VQA, mmshapes_root, str(tmp_path / 'vqa'))
    vqa = MultiModalInferencer(cfg, ckpt, device='cpu')
    image = sorted(__import__('glob').glob(osp.join(mmshapes_root, 'images', 'val', '*.png')))[0]
    one = vqa(dict(image=image, text='how many circles are there?'))[0]
    batch = vqa([dict(image=image, text='how many circles are there?')] * 3, batch_size=2)
    assert one['pred_answer'] in vqa.metadata()['answers']
    for b in batch:
        assert b['topk_scores'] == pytest.approx(one['topk_scores'], abs=1e-5)


def test_bad_inputs_name_the_modality(det):
    from mmfusion.errors import DataError
    inferencer, _ = det
    img = np.zeros((64, 64, 3), np.uint8)
    with pytest.raises(DataError, match=r"missing input 'depth'"):
        inferencer(dict(image=img))
    with pytest.raises(DataError, match=r"unknown input 'audio'"):
        inferencer(dict(image=img, depth=np.ones((64, 64)), audio='x.wav'))
    with pytest.raises(DataError, match=r"input 'depth': expected an \(H, W\)"):
        inferencer(dict(image=img, depth=np.ones((64, 64, 3))))
