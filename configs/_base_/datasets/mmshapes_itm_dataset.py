# Image-text matching on the embedded MMShapes dataset: does the caption
# describe the picture? Every image comes with its true caption and a caption
# of a slightly different scene (one colour, shape or count changed), so text
# alone and the image alone are both at chance.
dataset_type = 'MMShapesClsDataset'
data_root = 'data/mmshapes'

train_pipeline = [
    dict(type='LoadImageFromFile', cache_size=4096),
    dict(type='PackMultiModalInputs', inputs=dict(image='img', text='text')),
]
test_pipeline = train_pipeline

# 64x64 images: on few cores, worker processes only compete with the model
# (see _base_/datasets/mmshapes_vqa_dataset.py); raise num_workers on larger machines.
train_dataloader = dict(
    batch_size=64,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type=dataset_type, task='itm', data_root=data_root, split='train',
                 pipeline=train_pipeline),
)
val_dataloader = dict(
    batch_size=128,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, task='itm', data_root=data_root, split='val',
                 pipeline=test_pipeline),
)
val_evaluator = [
    dict(type='Accuracy'),
    dict(type='SingleLabelMetric', items=('precision', 'recall', 'f1-score', 'roc_auc')),
]
test_dataloader = val_dataloader
test_evaluator = val_evaluator
