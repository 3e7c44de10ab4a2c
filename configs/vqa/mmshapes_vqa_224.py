# The quick-start VQA model (configs/vqa/mmshapes_vqa.py) on 224x224 JPEG
# images: the same ResNet-10 at a quarter width, now on a 7x7 grid of cells.
# Create the data first:
#   python tools/dataset_converters/mmshapes_jpeg.py --out-dir data/mmshapes_224 --img-size 224
_base_ = './mmshapes_vqa.py'

data_root = 'data/mmshapes_224'
img_size = 224
pipeline = [
    # no decoded-image cache: 2000 images of 224x224x3 would take 300 MB per
    # process; libjpeg-turbo (OpenCV) decodes a 224 px JPEG in well under 1 ms
    dict(type='LoadImageFromFile'),
    # a no-op on these files; it makes any other image size fit the model
    dict(type='MultiModalResize', scale=(img_size, img_size), keep_ratio=False),
    dict(type='PackMultiModalInputs', inputs=dict(image='img', text='question')),
]
_dataset = dict(data_root=data_root, mmshapes=dict(img_size=img_size),
                img_file_template='{image_id:06d}.jpg', pipeline=pipeline)
# decoding is the pipeline's cost here: one worker overlaps it with the
# model's step (on a GPU also set pin_memory=True)
train_dataloader = dict(num_workers=1, persistent_workers=True, dataset=_dataset)
val_dataloader = dict(num_workers=1, persistent_workers=True, dataset=_dataset)
test_dataloader = val_dataloader
