# The RGB-D trunk shared by the MMShapes detection and segmentation configs: a
# quarter-width ResNet-10 per modality (image and depth) giving strides 4, 8
# and 16 (objects are 18-27 px in 64 px pictures), an FPN each, and per-level
# concat + 1x1 conv fusion. The task configs add the head.
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
)
