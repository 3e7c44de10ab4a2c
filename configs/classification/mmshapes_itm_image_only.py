# Unimodal baseline: the image alone, no caption (same image encoder, head and
# schedule). Each image comes once with a true and once with a false caption,
# so this stays at chance.
_base_ = './mmshapes_itm.py'

image_only_pipeline = [
    dict(type='LoadImageFromFile', cache_size=4096),
    dict(type='PackMultiModalInputs', inputs=dict(image='img')),
]
train_dataloader = dict(dataset=dict(pipeline=image_only_pipeline))
val_dataloader = dict(dataset=dict(pipeline=image_only_pipeline))
test_dataloader = dict(dataset=dict(pipeline=image_only_pipeline))

model = dict(
    data_preprocessor=dict(text=None),
    encoders=dict(text=None),
    fusion=dict(_delete_=True, type='ConcatFusion', out_dim=256, hidden_dims=[1024],
                dropout=0.1),
)
