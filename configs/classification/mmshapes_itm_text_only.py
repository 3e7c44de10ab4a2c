# Unimodal baseline: the caption alone, no image (same text encoder, head and
# schedule). Every caption is as likely to be a true as a false description,
# so this stays near chance.
_base_ = './mmshapes_itm.py'

text_only_pipeline = [dict(type='PackMultiModalInputs', inputs=dict(text='text'))]
train_dataloader = dict(dataset=dict(pipeline=text_only_pipeline))
val_dataloader = dict(dataset=dict(pipeline=text_only_pipeline))
test_dataloader = dict(dataset=dict(pipeline=text_only_pipeline))

model = dict(
    encoders=dict(image=None),
    fusion=dict(_delete_=True, type='ConcatFusion', out_dim=256, hidden_dims=[1024],
                dropout=0.1),
)
