# Referring detection on MMShapes: the RGB-D detector of mmshapes_rgbd_det.py
# conditioned on the expression. A word-embedding text encoder; FiLM on every
# pyramid level (the text scales and shifts the fused RGB-D features); an FCOS
# head with one class ('object': whatever the expression refers to).
_base_ = [
    '../_base_/datasets/mmshapes_ref_det.py',
    '../_base_/schedules/adamw_12e.py',
    '../_base_/default_runtime.py',
]

train_set = {{_base_.train_dataloader.dataset}}
text_vocab_size = 64
backbone = dict(type='TimmEncoder', model_name='resnet18', layers=[1, 1, 1, 1],
                channels=[16, 32, 64, 128], stem_width=16, out_indices=(1, 2, 3))
model = dict(
    type='MultiModalDenseModel',
    data_preprocessor=dict(
        type='MultiModalDataPreprocessor',
        image=dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
                   bgr_to_rgb=True, pad_size_divisor=16),
        depth=dict(mean=[7.0], std=[3.0], pad_size_divisor=16),
        text=dict(tokenizer=dict(type='WordLevelTokenizer', dataset=train_set,
                                 text_key='text', max_vocab_size=text_vocab_size),
                  max_length=16)),
    encoders=dict(
        image=backbone, depth=dict(backbone, in_chans=1),
        text=dict(type='TextCNNEncoder', vocab_size=text_vocab_size, embed_dim=64, out_dim=128,
                  pooling='mean')),
    necks=dict(image=dict(type='FPN', out_channels=64), depth=dict(type='FPN', out_channels=64)),
    fusion=dict(type='SpatialFiLMFusion', out_channels=64),
    head=dict(type='FCOSHead', num_classes=1, stacked_convs=2, strides=(4, 8, 16),
              center_sampling=True),
)
optim_wrapper = dict(optimizer=dict(lr=2e-3))
default_hooks = dict(checkpoint=dict(save_best='coco/bbox_mAP_50', rule='greater'))
