# Referring segmentation on MMShapes: the RGB-D trunk of
# segmentation/mmshapes_rgbd_seg.py conditioned on the expression. An n-gram
# CNN text encoder; FiLM on every pyramid level (the text scales and shifts the
# fused RGB-D features); a 2-class decode head (background / referred).
_base_ = [
    '../_base_/datasets/mmshapes_ref_seg_dataset.py',
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
    head=dict(type='FPNSegHead', num_classes=2, channels=32, strides=(4, 8, 16),
              loss_dice_weight=0.5),
)
optim_wrapper = dict(optimizer=dict(lr=2e-3))
default_hooks = dict(checkpoint=dict(save_best='refseg/mIoU', rule='greater'))
