# VQA on MMShapes at a real image size: 224x224 JPEG images in a data root of
# their own (the 64 px PNG copy in data/mmshapes stays untouched). Create it
# once with
#   python tools/dataset_converters/mmshapes_jpeg.py --out-dir data/mmshapes_224 --img-size 224
# tools/analysis_tools/pipeline_speed.py compares this pipeline with a plain
# torchvision one on the same files.
dataset_type = 'MMShapesVQADataset'
data_root = 'data/mmshapes_224'
img_size = 224

train_pipeline = [
    # no decoded-image cache: 2000 images of 224x224x3 would take 300 MB per
    # process; libjpeg-turbo (OpenCV) decodes a 224 px JPEG in well under 1 ms
    dict(type='LoadImageFromFile'),
    # a no-op on these files; it makes any other image size fit the model
    dict(type='MultiModalResize', scale=(img_size, img_size), keep_ratio=False),
    dict(type='PackMultiModalInputs', inputs=dict(image='img', text='question')),
]
test_pipeline = train_pipeline

_dataset = dict(type=dataset_type, data_root=data_root,
                mmshapes=dict(img_size=img_size), img_file_template='{image_id:06d}.jpg')
train_dataloader = dict(
    batch_size=64,
    # decoding is the pipeline's cost here: one worker overlaps it with the
    # model's step (on a GPU also set pin_memory=True)
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(**_dataset, split='train', pipeline=train_pipeline),
)
val_dataloader = dict(
    batch_size=128,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(**_dataset, split='val', pipeline=test_pipeline),
)
val_evaluator = dict(type='VQAAccuracy')
test_dataloader = val_dataloader
test_evaluator = val_evaluator
