# Ablation: the question alone, no image (same text encoder, head and
# schedule). Shows how much of mmshapes_vqa.py's accuracy needs the picture.
_base_ = './mmshapes_vqa.py'

text_only_pipeline = [dict(type='PackMultiModalInputs', inputs=dict(text='question'))]
train_dataloader = dict(dataset=dict(pipeline=text_only_pipeline))
val_dataloader = dict(dataset=dict(pipeline=text_only_pipeline))
test_dataloader = dict(dataset=dict(pipeline=text_only_pipeline))

model = dict(
    encoders=dict(image=None),
    fusion=dict(_delete_=True, type='ConcatFusion', out_dim=512, hidden_dims=[1024],
                dropout=0.1),
)
