# RGB-D semantic segmentation on MMShapes: the RGB-D trunk (a small ResNet and
# an FPN per modality, per-level concat fusion) and a Panoptic-FPN-style decode
# head (cross-entropy + Dice).
_base_ = [
    '../_base_/datasets/mmshapes_rgbd_seg_dataset.py',
    '../_base_/models/mmshapes_rgbd_fpn.py',
    '../_base_/schedules/adamw_12e.py',
    '../_base_/default_runtime.py',
]

model = dict(head=dict(type='FPNSegHead', num_classes=7, channels=32, strides=(4, 8, 16),
                       loss_dice_weight=0.5))
optim_wrapper = dict(optimizer=dict(lr=2e-3))
default_hooks = dict(checkpoint=dict(save_best='seg/mIoU', rule='greater'))
