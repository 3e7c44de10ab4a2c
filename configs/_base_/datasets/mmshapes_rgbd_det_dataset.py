# RGB-D detection on the embedded MMShapes dataset: 6 classes '<shape> near' /
# '<shape> far' (closer or farther than 5 m). The picture shows the shapes but
# no distance cue; the depth map shows the distance but not the shape.
dataset_type = 'MMShapesDetDataset'
data_root = 'data/mmshapes'

train_pipeline = [
    dict(type='LoadImageFromFile', cache_size=4096),
    dict(type='LoadDepthFromFile', cache_size=4096),
    dict(type='LoadAnnotations', with_bbox=True, with_label=True),
    # the same flip for the image, the depth map and the boxes
    dict(type='MultiModalRandomFlip', prob=0.75,
         direction=['horizontal', 'vertical', 'diagonal']),
    dict(type='PackMultiModalInputs', inputs=dict(image='img', depth='depth')),
]
test_pipeline = [
    dict(type='LoadImageFromFile', cache_size=4096),
    dict(type='LoadDepthFromFile', cache_size=4096),
    dict(type='LoadAnnotations', with_bbox=True, with_label=True),
    dict(type='PackMultiModalInputs', inputs=dict(image='img', depth='depth')),
]

train_dataloader = dict(
    batch_size=16,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type=dataset_type, task='rgbd', data_root=data_root, split='train',
                 filter_empty_gt=True, pipeline=train_pipeline),
)
val_dataloader = dict(
    batch_size=32,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, task='rgbd', data_root=data_root, split='val',
                 test_mode=True, pipeline=test_pipeline),
)
# the classes are not the file's categories (near/far is derived from each
# object's distance), so the ground truth comes from the samples
val_evaluator = dict(type='CocoMetric', classwise=True)
test_dataloader = val_dataloader
test_evaluator = val_evaluator
