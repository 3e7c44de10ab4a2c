# Cross-modal distillation: the image+audio model of
# configs/classification/mmshapes_av.py teaches the image-only student of
# mmshapes_av_image_student.py. Training batches carry both modalities (the
# teacher's); the student encodes the image alone, and is evaluated on
# images alone. Hints: the teacher's image features (FitNets) and logits.
_base_ = '../classification/mmshapes_av.py'

image_only_test = [
    dict(type='LoadImageFromFile', cache_size=4096),
    dict(type='PackMultiModalInputs', inputs=dict(image='img')),
]
val_dataloader = dict(dataset=dict(pipeline=image_only_test))
test_dataloader = dict(dataset=dict(pipeline=image_only_test))

student = dict(
    type='MultiModalClassifier',
    data_preprocessor={{_base_.model.data_preprocessor}},
    encoders=dict(
        image=dict(type='TimmEncoder', model_name='resnet18', layers=[1, 1, 1, 1],
                   channels=[16, 32, 64, 128], stem_width=16)),
    fusion=dict(type='ConcatFusion', out_dim=128, hidden_dims=[256], dropout=0.1),
    head=dict(type='ClsHead', num_classes=3, dropout=0.1),
)
model = dict(
    _delete_=True,
    type='KnowledgeDistiller',
    student=student,
    teacher=dict(config='configs/classification/mmshapes_av.py',
                 checkpoint='work_dirs/mmshapes_av/epoch_30.pth'),
    logit_loss=dict(type='KDLoss', temperature=4.0, loss_weight=1.0),
    feature_losses=[dict(student='encoders.image', teacher='encoders.image',
                         loss=dict(type='FitNetsLoss', loss_weight=1.0, normalize=True))],
)
train_cfg = dict(max_epochs=12)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=1, end=12, eta_min=1e-5,
         convert_to_iter_based=True),
]
