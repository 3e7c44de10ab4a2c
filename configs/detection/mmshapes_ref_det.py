# Referring detection on MMShapes: the RGB-D trunk of mmshapes_rgbd_det.py
# conditioned on the expression. An n-gram CNN text encoder; FiLM on every
# pyramid level (the text scales and shifts the fused RGB-D features); an FCOS
# head with one class ('object': whatever the expression refers to).
_base_ = [
    '../_base_/datasets/mmshapes_ref_det_dataset.py',
    '../_base_/models/mmshapes_rgbd_fpn.py',
    '../_base_/schedules/adamw_12e.py',
    '../_base_/default_runtime.py',
]

text_vocab_size = 64
model = dict(
    data_preprocessor=dict(
        text=dict(tokenizer=dict(type='WordLevelTokenizer', max_vocab_size=text_vocab_size),
                  max_length=16)),
    encoders=dict(
        text=dict(type='TextCNNEncoder', vocab_size=text_vocab_size, embed_dim=64, out_dim=128,
                  pooling='mean')),
    # FiLM from the pooled expression on every level of the fused RGB-D pyramid
    fusion=dict(_delete_=True, type='SpatialFiLMFusion', out_channels=64),
    head=dict(type='FCOSHead', num_classes=1, stacked_convs=2, strides=(4, 8, 16),
              center_sampling=True),
)
optim_wrapper = dict(optimizer=dict(lr=2e-3))
default_hooks = dict(checkpoint=dict(save_best='coco/bbox_mAP_50', rule='greater'))
