# The RGB-only baseline of mmshapes_rgbd_det.py: same model without the depth
# branch. It sees the shapes but cannot tell near from far.
_base_ = './mmshapes_rgbd_det.py'

model = dict(
    data_preprocessor=dict(depth=None),
    encoders=dict(depth=None),
    necks=dict(depth=None),
    fusion=None,
)
_pack = dict(type='PackMultiModalInputs', inputs=dict(image='img'))
train_dataloader = dict(dataset=dict(pipeline=[
    dict(type='LoadImageFromFile', cache_size=4096),
    dict(type='LoadAnnotations', with_bbox=True, with_label=True),
    dict(type='MultiModalRandomFlip', prob=0.75,
         direction=['horizontal', 'vertical', 'diagonal']),
    _pack,
]))
val_dataloader = dict(dataset=dict(pipeline=[
    dict(type='LoadImageFromFile', cache_size=4096),
    dict(type='LoadAnnotations', with_bbox=True, with_label=True),
    _pack,
]))
test_dataloader = val_dataloader
