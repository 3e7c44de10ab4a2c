# VQA on the embedded MMShapes dataset (generated under data_root on first use).
dataset_type = 'MMShapesVQADataset'
data_root = 'data/mmshapes'

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='PackMultiModalInputs', inputs=dict(image='img', text='question')),
]
test_pipeline = train_pipeline

train_dataloader = dict(
    batch_size=64,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root, split='train',
                 pipeline=train_pipeline),
)
val_dataloader = dict(
    batch_size=128,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, split='val',
                 pipeline=test_pipeline),
)
val_evaluator = dict(type='VQAAccuracy')
test_dataloader = val_dataloader
test_evaluator = val_evaluator
