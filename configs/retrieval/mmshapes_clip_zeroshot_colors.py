# Zero-shot colour recognition with the contrastive model of mmshapes_clip.py:
# no colour label is ever trained on. The text tower writes one classifier
# vector per colour from prompts (CLIP's prompt ensembling), the image tower
# embeds the picture, and the multi-label classification metric scores which
# of the six colours are present (mAP, as the supervised reference
# mmshapes_colors_supervised.py). Run on a trained checkpoint:
#   python tools/analysis_tools/zero_shot.py \
#       configs/retrieval/mmshapes_clip_zeroshot_colors.py work_dirs/mmshapes_clip/epoch_12.pth \
#       --linear-probe
# Training with this config trains the dual encoder on captions, as mmshapes_clip.py.
_base_ = './mmshapes_clip.py'

model = dict(
    type='ZeroShotClassifier',
    class_names=['red', 'green', 'blue', 'yellow', 'purple', 'cyan'],
    # MMShapes captions name a colour only with a shape: one prompt per
    # shape, averaged, reads as "a <colour> object"
    templates=['a {} circle.', 'a {} square.', 'a {} triangle.'],
    multi_label=True)

test_dataloader = dict(
    batch_size=128, num_workers=0, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(_delete_=True, type='MMShapesClsDataset', task='multilabel',
                 data_root='data/mmshapes', split='val',
                 pipeline=[dict(type='LoadImageFromFile', cache_size=4096),
                           dict(type='PackMultiModalInputs', inputs=dict(image='img'))]))
# labelled training data for the supervised linear probe of
# tools/analysis_tools/zero_shot.py --linear-probe (never used by zero-shot)
probe_dataloader = dict(
    batch_size=128, num_workers=0, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='MMShapesClsDataset', task='multilabel', data_root='data/mmshapes',
                 split='train',
                 pipeline=[dict(type='LoadImageFromFile', cache_size=4096),
                           dict(type='PackMultiModalInputs', inputs=dict(image='img'))]))
test_evaluator = dict(_delete_=True, type='MultiLabelMetric',
                      items=('precision', 'recall', 'f1-score', 'mAP'))
