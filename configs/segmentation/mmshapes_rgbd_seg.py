# RGB-D semantic segmentation on MMShapes: a quarter-width ResNet-10 per
# modality (image and depth), an FPN each, per-level concat + 1x1 conv fusion,
# and a Panoptic-FPN-style decode head (cross-entropy + Dice).
_base_ = [
    '../_base_/datasets/mmshapes_rgbd_seg.py',
    '../_base_/schedules/adamw_12e.py',
    '../_base_/default_runtime.py',
]

backbone = dict(type='TimmEncoder', model_name='resnet18', layers=[1, 1, 1, 1],
                channels=[16, 32, 64, 128], stem_width=16, out_indices=(1, 2, 3))
model = dict(
    type='MultiModalDenseModel',
    data_preprocessor=dict(
        type='MultiModalDataPreprocessor',
        image=dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
                   bgr_to_rgb=True, pad_size_divisor=16),
        # metres: objects at 1-9, background at 10
        depth=dict(mean=[7.0], std=[3.0], pad_size_divisor=16)),
    encoders=dict(image=backbone, depth=dict(backbone, in_chans=1)),
    necks=dict(image=dict(type='FPN', out_channels=64), depth=dict(type='FPN', out_channels=64)),
    fusion=dict(type='SpatialConcatFusion', out_channels=64),
    head=dict(type='FPNSegHead', num_classes=7, channels=32, strides=(4, 8, 16),
              loss_dice_weight=0.5),
)
optim_wrapper = dict(optimizer=dict(lr=2e-3))
default_hooks = dict(checkpoint=dict(save_best='seg/mIoU', rule='greater'))
