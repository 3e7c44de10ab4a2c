# Unimodal baseline: the image alone, no sound (same image encoder, head and
# schedule). The picture shows 2-4 candidates of at least two shapes, so the
# best it can do is guess the likeliest shape.
_base_ = './mmshapes_av.py'

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
    encoders=dict(audio=None),
    fusion=dict(_delete_=True, type='ConcatFusion', out_dim=256, hidden_dims=[1024],
                dropout=0.1),
)
