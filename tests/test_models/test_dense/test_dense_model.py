"""MultiModalDenseModel wires encoders, necks, spatial fusion and a dense head."""
import pytest
import torch
from mmengine.optim import OptimWrapper
from mmengine.structures import InstanceData, PixelData

from mmfusion.errors import ConfigError
from mmfusion.registry import MODELS
from mmfusion.structures import MultiModalDataSample
from mmfusion.utils import register_all_modules

register_all_modules()

IMAGE_ENCODER = dict(type='TimmEncoder', model_name='resnet18', layers=[1, 1, 1, 1],
                     channels=[8, 16, 32, 64], stem_width=8, out_indices=(2, 3, 4))
DEPTH_ENCODER = dict(IMAGE_ENCODER, in_chans=1)
FPN = dict(type='FPN', out_channels=16)


def sample(size: int = 64, with_box: bool = True, with_seg: bool = True):
    s = MultiModalDataSample()
    s.set_metainfo(dict(img_shape=(size, size), ori_shape=(size, size), scale_factor=(1.0, 1.0)))
    if with_box:
        s.gt_instances = InstanceData(bboxes=torch.tensor([[8.0, 8.0, 40.0, 40.0]]),
                                      labels=torch.tensor([1]))
    if with_seg:
        seg = torch.zeros(1, size, size, dtype=torch.long)
        seg[:, 8:40, 8:40] = 1
        s.gt_sem_seg = PixelData(data=seg)
    return s


def batch(modalities=('image', 'depth'), n: int = 2) -> dict:
    inputs = {}
    if 'image' in modalities:
        inputs['image'] = [torch.randint(0, 255, (3, 64, 64), dtype=torch.uint8) for _ in range(n)]
    if 'depth' in modalities:
        inputs['depth'] = [torch.rand(1, 64, 64) * 9 for _ in range(n)]
    if 'text' in modalities:
        inputs['text'] = ['the nearest red circle', 'a square'][:n]
    return dict(inputs=inputs, data_samples=[sample() for _ in range(n)])


def preprocessor(text: bool = False) -> dict:
    cfg = dict(type='MultiModalDataPreprocessor',
               image=dict(mean=[127.5] * 3, std=[58.0] * 3, pad_size_divisor=32),
               depth=dict(mean=[5.0], std=[3.0], pad_size_divisor=32))
    if text:
        cfg['text'] = dict(tokenizer=dict(type='WordLevelTokenizer',
                                          texts=['the nearest red circle', 'a square']))
    return cfg


def rgbd_detector(**kwargs):
    cfg = dict(type='MultiModalDenseModel', data_preprocessor=preprocessor(),
               encoders=dict(image=IMAGE_ENCODER, depth=DEPTH_ENCODER),
               necks=dict(image=FPN, depth=FPN),
               fusion=dict(type='SpatialConcatFusion', out_channels=16),
               head=dict(type='FCOSHead', num_classes=3, stacked_convs=1,
                         strides=(8, 16, 32)))
    cfg.update(kwargs)
    return MODELS.build(cfg)


def test_rgbd_detector_trains_and_predicts():
    torch.manual_seed(0)
    model = rgbd_detector()
    # sizes were filled in from the encoders and necks
    assert model.necks['image'].out_channels == 16 and model.fusion.out_channels == 16
    data = model.data_preprocessor(batch(), True)
    pyramid = model(data['inputs'], mode='tensor')
    assert [tuple(p.shape) for p in pyramid] == [(2, 16, 8, 8), (2, 16, 4, 4), (2, 16, 2, 2)]

    wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.01))
    log = model.train_step(batch(), wrapper)
    assert {'loss_cls', 'loss_bbox', 'loss_centerness'} <= set(log)
    model.eval()
    with torch.no_grad():
        out = model.test_step(batch())
    assert all('pred_instances' in s and s.pred_instances.bboxes.shape[-1] == 4 for s in out)


def test_text_conditioned_segmentor_fills_the_text_size_in():
    torch.manual_seed(0)
    model = MODELS.build(dict(
        type='MultiModalDenseModel', data_preprocessor=preprocessor(text=True),
        encoders=dict(image=IMAGE_ENCODER,
                      text=dict(type='WordEmbeddingEncoder', vocab_size=32, embed_dim=24)),
        necks=dict(image=FPN),
        fusion=dict(type='SpatialFiLMFusion', out_channels=16),
        head=dict(type='FPNSegHead', num_classes=2, channels=8, strides=(8, 16, 32))))
    assert model.fusion.cond_dim == 24
    wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.01))
    log = model.train_step(batch(('image', 'text')), wrapper)
    assert torch.isfinite(log['loss'])
    model.eval()
    with torch.no_grad():
        out = model.test_step(batch(('image', 'text')))
    assert tuple(out[0].pred_sem_seg.data.shape) == (1, 64, 64)


def test_single_modality_baseline_needs_no_fusion():
    model = rgbd_detector(encoders=dict(image=IMAGE_ENCODER, depth=None),
                          necks=dict(image=FPN, depth=None), fusion=None)
    data = model.data_preprocessor(batch(('image',)), True)
    assert len(model(data['inputs'], mode='tensor')) == 3


def test_config_mistakes_are_caught_at_build_time():
    with pytest.raises(ConfigError, match='model.fusion is None'):
        rgbd_detector(fusion=None)
    with pytest.raises(ConfigError, match=r"model.necks names \['audio'\]"):
        rgbd_detector(necks=dict(image=FPN, audio=FPN))
    with pytest.raises(ConfigError, match='head.in_channels=32 but the fused pyramid has 16'):
        rgbd_detector(head=dict(type='FCOSHead', num_classes=3, in_channels=32))
    with pytest.raises(ConfigError, match='no encoder produces feature maps'):
        rgbd_detector(encoders=dict(image=dict(IMAGE_ENCODER, out_indices=None), depth=None),
                      necks=dict(image=None, depth=None), fusion=None)
