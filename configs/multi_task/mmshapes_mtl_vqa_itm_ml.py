# Multi-task learning on MMShapes: one image encoder shared by three tasks,
# trained on a mixture of their datasets -
#   vqa: visual question answering (image + question, MLB, answer classifier)
#   itm: image-text matching (image + caption, MLB, match / mismatch)
#   ml:  multi-label classification (image only: which colours are present)
# Each task keeps its own text encoder (question words and captions have
# their own vocabularies, so they are two modalities), fusion and head; the
# image encoder, the biggest part of each single-task model, is shared.
# Single-task baselines: configs/vqa/mmshapes_vqa.py,
# configs/classification/mmshapes_itm.py, configs/multi_task/mmshapes_multilabel.py.
_base_ = [
    '../_base_/schedules/adamw_12e.py',
    '../_base_/default_runtime.py',
]

data_root = 'data/mmshapes'
load_image = dict(type='LoadImageFromFile', cache_size=4096)
vqa_pipeline = [load_image, dict(type='PackMultiModalInputs',
                                 inputs=dict(image='img', question='question'))]
itm_pipeline = [load_image, dict(type='PackMultiModalInputs',
                                 inputs=dict(image='img', caption='text'))]
ml_pipeline = [load_image, dict(type='PackMultiModalInputs', inputs=dict(image='img'))]


def split_sets(split):
    return dict(
        vqa=dict(type='MMShapesVQADataset', data_root=data_root, split=split,
                 pipeline=vqa_pipeline),
        itm=dict(type='MMShapesClsDataset', task='itm', data_root=data_root, split=split,
                 pipeline=itm_pipeline),
        ml=dict(type='MMShapesClsDataset', task='multilabel', data_root=data_root,
                split=split, pipeline=ml_pipeline))


train_sets = split_sets('train')
val_sets = split_sets('val')

# an epoch is 16000 samples drawn with these ratios: per epoch one pass over
# the VQA training set, 1.6 over the ITM pairs (matching needs many updates)
# and 0.8 of the multi-label set. With vqa=0.4, itm=0.5 VQA ended 6.4 points
# lower (docs/multi_task_and_distillation.md)
train_dataloader = dict(
    batch_size=32, num_workers=0, persistent_workers=False,
    sampler=dict(type='MultiTaskSampler', ratios=dict(vqa=0.5, itm=0.4, ml=0.1),
                 num_samples=16000),
    # every batch holds one task: one set of modalities, one head
    batch_sampler=dict(type='TaskBatchSampler'),
    dataset=dict(type='MultiTaskDataset', datasets=train_sets))
val_dataloader = dict(
    batch_size=128, num_workers=0, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    batch_sampler=dict(type='TaskBatchSampler'),
    dataset=dict(type='MultiTaskDataset', datasets=val_sets))
test_dataloader = val_dataloader
# one evaluation, each task's metrics under its name: vqa/vqa/acc,
# itm/accuracy/top1, ml/multi-label/mAP ...
val_evaluator = dict(
    type='MultiTaskMetric',
    task_metrics=dict(vqa=dict(type='VQAAccuracy'),
                      itm=dict(type='Accuracy'),
                      ml=dict(type='MultiLabelMetric', items=('precision', 'recall', 'f1-score',
                                                         'mAP'))))
test_evaluator = val_evaluator


def vqa_train_set():
    return dict(type='MMShapesVQADataset', data_root=data_root, split='train')


model = dict(
    type='MultiTaskModel',
    data_preprocessor=dict(
        type='MultiModalDataPreprocessor',
        image=dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
                   bgr_to_rgb=True),
        # each vocabulary is learnt from its own task's training set
        question=dict(tokenizer=dict(type='WordLevelTokenizer', max_vocab_size=128,
                                     dataset=vqa_train_set(), text_key='question'),
                      max_length=24),
        caption=dict(tokenizer=dict(type='WordLevelTokenizer', max_vocab_size=64,
                                    dataset=dict(type='MMShapesClsDataset', task='itm',
                                                 data_root=data_root, split='train'),
                                    text_key='text'),
                     max_length=32)),
    encoders=dict(
        image=dict(type='TimmEncoder', model_name='resnet18', layers=[1, 1, 1, 1],
                   channels=[32, 64, 128, 256], stem_width=32),
        question=dict(type='WordEmbeddingEncoder', vocab_size=128, embed_dim=128),
        caption=dict(type='TextCNNEncoder', vocab_size=64, embed_dim=64, out_dim=256,
                     pooling='mean')),
    tasks=dict(
        vqa=dict(modalities=['image', 'question'],
                 fusion=dict(type='MLBFusion', out_dim=512, hidden_dim=1024, dropout=0.1),
                 head=dict(type='VQAHead', hidden_dim=0, dropout=0.1,
                           answer_vocab=dict(dataset=vqa_train_set()),
                           loss=dict(type='CrossEntropyLoss'))),
        itm=dict(modalities=['image', 'caption'],
                 fusion=dict(type='MLBFusion', out_dim=256, hidden_dim=1024, dropout=0.1),
                 head=dict(type='ClsHead', num_classes=2, dropout=0.1)),
        ml=dict(modalities=['image'],
                head=dict(type='MultiLabelClsHead', num_classes=6, dropout=0.1))),
    task_weighting=dict(type='FixedTaskWeighting'),
)
optim_wrapper = dict(optimizer=dict(lr=2e-3))
train_cfg = dict(max_epochs=12, val_interval=3)
default_hooks = dict(checkpoint=dict(save_best='vqa/vqa/acc', rule='greater'))
auto_scale_lr = dict(base_batch_size=32)
