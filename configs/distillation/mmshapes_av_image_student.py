# The cross-modal distillation student trained alone: the audio-visual task
# seen through the image only, with the small image encoder of
# mmshapes_av_student.py and its schedule. mmshapes_av_image_kd.py trains it
# with the image+audio model as teacher.
_base_ = '../classification/mmshapes_av.py'

image_only_train = [
    dict(type='LoadImageFromFile', cache_size=4096),
    dict(type='RandomFlip', prob=0.75, direction=['horizontal', 'vertical', 'diagonal']),
    dict(type='PackMultiModalInputs', inputs=dict(image='img')),
]
image_only_test = [
    dict(type='LoadImageFromFile', cache_size=4096),
    dict(type='PackMultiModalInputs', inputs=dict(image='img')),
]
train_dataloader = dict(dataset=dict(pipeline=image_only_train))
val_dataloader = dict(dataset=dict(pipeline=image_only_test))
test_dataloader = dict(dataset=dict(pipeline=image_only_test))

model = dict(
    encoders=dict(image=dict(channels=[16, 32, 64, 128], stem_width=16), audio=None),
    fusion=dict(_delete_=True, type='ConcatFusion', out_dim=128, hidden_dims=[256],
                dropout=0.1),
)
train_cfg = dict(max_epochs=12)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=1, end=12, eta_min=1e-5,
         convert_to_iter_based=True),
]
