# Multi-label classification on MMShapes: which of the six colours are in the
# picture? The image-only single-task baseline of
# configs/multi_task/mmshapes_mtl_vqa_itm_ml.py (same image encoder and head).
_base_ = [
    '../_base_/schedules/adamw_12e.py',
    '../_base_/default_runtime.py',
]

dataset_type = 'MMShapesClsDataset'
data_root = 'data/mmshapes'
pipeline = [
    dict(type='LoadImageFromFile', cache_size=4096),
    dict(type='PackMultiModalInputs', inputs=dict(image='img')),
]
train_dataloader = dict(
    batch_size=64, num_workers=0, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type=dataset_type, task='multilabel', data_root=data_root, split='train',
                 pipeline=pipeline))
val_dataloader = dict(
    batch_size=128, num_workers=0, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, task='multilabel', data_root=data_root, split='val',
                 pipeline=pipeline))
val_evaluator = dict(type='MultiLabelMetric', items=('precision', 'recall', 'f1-score', 'mAP'))
test_dataloader = val_dataloader
test_evaluator = val_evaluator

model = dict(
    type='MultiModalClassifier',
    data_preprocessor=dict(
        type='MultiModalDataPreprocessor',
        image=dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
                   bgr_to_rgb=True)),
    encoders=dict(
        image=dict(type='TimmEncoder', model_name='resnet18', layers=[1, 1, 1, 1],
                   channels=[32, 64, 128, 256], stem_width=32)),
    # one modality: the fusion is a plain projection of the pooled image feature
    fusion=dict(type='ConcatFusion', out_dim=256),
    head=dict(type='MultiLabelClsHead', num_classes=6, dropout=0.1),
)
optim_wrapper = dict(optimizer=dict(lr=2e-3))
