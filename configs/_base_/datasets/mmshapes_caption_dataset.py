# Image-caption pairs of the embedded MMShapes dataset (COCO captions format,
# annotations/captions_{split}.json). Training yields one sample per caption;
# validation one per image with all its captions (test_mode=True), which
# RetrievalRecall ranks both ways. Any COCO captions file works the same way:
# type='CocoCaptionDataset', ann_file=..., data_root=...
dataset_type = 'MMShapesCaptionDataset'
data_root = 'data/mmshapes'

train_pipeline = [
    dict(type='LoadImageFromFile', cache_size=4096),
    dict(type='PackMultiModalInputs', inputs=dict(image='img', text='text')),
]
# all of an image's captions travel in the data sample, and the model embeds
# them all ('text' is the first one, packed so that every tower has an input)
test_pipeline = [
    dict(type='LoadImageFromFile', cache_size=4096),
    dict(type='PackMultiModalInputs', inputs=dict(image='img', text='text'),
         meta_keys=('img_path', 'img_id', 'item_idx', 'captions')),
]

# 64x64 images: on few cores worker processes only compete with the model
# (see mmshapes_vqa_dataset.py); raise num_workers for real images.
train_dataloader = dict(
    batch_size=128,
    num_workers=0,
    persistent_workers=False,
    # every rank must see the same batch size for the gathered contrastive loss
    drop_last=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root, split='train',
                 pipeline=train_pipeline),
)
val_dataloader = dict(
    batch_size=128,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, split='val', test_mode=True,
                 pipeline=test_pipeline),
)
val_evaluator = dict(type='RetrievalRecall', modalities=('image', 'text'), topk=(1, 5, 10))
test_dataloader = val_dataloader
test_evaluator = val_evaluator
