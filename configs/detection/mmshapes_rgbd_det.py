# RGB-D detection on MMShapes: the RGB-D trunk (a small ResNet and an FPN per
# modality, per-level concat fusion) and an FCOS head over strides 4, 8, 16.
_base_ = [
    '../_base_/datasets/mmshapes_rgbd_det_dataset.py',
    '../_base_/models/mmshapes_rgbd_fpn.py',
    '../_base_/schedules/adamw_12e.py',
    '../_base_/default_runtime.py',
]

model = dict(head=dict(type='FCOSHead', num_classes=6, stacked_convs=2, strides=(4, 8, 16),
                       center_sampling=True))
optim_wrapper = dict(optimizer=dict(lr=2e-3))
default_hooks = dict(checkpoint=dict(save_best='coco/bbox_mAP_50', rule='greater'))
