# Referring detection on the embedded MMShapes dataset: a referring expression
# ("the nearest red circle", "the squares") selects which objects to detect.
# One sample per expression; the referred objects are class 'object'. About
# half the expressions name a distance, which only the depth map shows.
dataset_type = 'MMShapesDetDataset'
data_root = 'data/mmshapes'

train_pipeline = [
    dict(type='LoadImageFromFile', cache_size=4096),
    dict(type='LoadDepthFromFile', cache_size=4096),
    dict(type='LoadAnnotations', with_bbox=True, with_label=True),
    # the same flip for the image, the depth map and the boxes
    dict(type='MultiModalRandomFlip', prob=0.75,
         direction=['horizontal', 'vertical', 'diagonal']),
    dict(type='PackMultiModalInputs', inputs=dict(image='img', depth='depth', text='text')),
]
test_pipeline = [
    dict(type='LoadImageFromFile', cache_size=4096),
    dict(type='LoadDepthFromFile', cache_size=4096),
    dict(type='LoadAnnotations', with_bbox=True, with_label=True),
    dict(type='PackMultiModalInputs', inputs=dict(image='img', depth='depth', text='text')),
]

train_dataloader = dict(
    batch_size=16,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type=dataset_type, task='ref', data_root=data_root, split='train',
                 filter_empty_gt=True, pipeline=train_pipeline),
)
val_dataloader = dict(
    batch_size=32,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, task='ref', data_root=data_root, split='val',
                 test_mode=True, pipeline=test_pipeline),
)
# several expressions share a picture, so each sample is its own COCO image and
# the ground truth comes from the samples
val_evaluator = dict(type='CocoMetric', classwise=True)
test_dataloader = val_dataloader
test_evaluator = val_evaluator
