# RGB-D semantic segmentation on the embedded MMShapes dataset: background and
# 6 classes '<shape> near' / '<shape> far' (closer or farther than 5 m), which
# need both the picture (the shape) and the depth map (the distance).
dataset_type = 'MMShapesSegDataset'
data_root = 'data/mmshapes'

train_pipeline = [
    dict(type='LoadImageFromFile', cache_size=4096),
    dict(type='LoadDepthFromFile', cache_size=4096),
    dict(type='LoadAnnotations', with_bbox=False, with_label=False, with_seg=True),
    # the same flip for the image, the depth map and the label map
    dict(type='MultiModalRandomFlip', prob=0.75,
         direction=['horizontal', 'vertical', 'diagonal']),
    dict(type='PackMultiModalInputs', inputs=dict(image='img', depth='depth')),
]
test_pipeline = [
    dict(type='LoadImageFromFile', cache_size=4096),
    dict(type='LoadDepthFromFile', cache_size=4096),
    dict(type='LoadAnnotations', with_bbox=False, with_label=False, with_seg=True),
    dict(type='PackMultiModalInputs', inputs=dict(image='img', depth='depth')),
]

train_dataloader = dict(
    batch_size=16,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type=dataset_type, task='rgbd', data_root=data_root, split='train',
                 pipeline=train_pipeline),
)
val_dataloader = dict(
    batch_size=32,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, task='rgbd', data_root=data_root, split='val',
                 test_mode=True, pipeline=test_pipeline),
)
val_evaluator = dict(type='IoUMetric')
test_dataloader = val_dataloader
test_evaluator = val_evaluator
