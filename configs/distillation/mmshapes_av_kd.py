# Knowledge distillation on the audio-visual task: the student of
# mmshapes_av_student.py (a fifth of the parameters, the same schedule)
# learns from the labels, from the logits of the full model of
# configs/classification/mmshapes_av.py (Hinton et al. 2015, temperature 4)
# and from its fused vector (FitNets, through a learnt projection). The
# teacher is loaded from its checkpoint, frozen and in eval mode, and is not
# saved in this run's checkpoints.
#   python tools/train.py configs/classification/mmshapes_av.py   # the teacher
#   python tools/train.py configs/distillation/mmshapes_av_kd.py \
#       --cfg-options model.teacher.checkpoint=work_dirs/mmshapes_av/epoch_30.pth
_base_ = '../classification/mmshapes_av.py'

student = dict(
    type='MultiModalClassifier',
    data_preprocessor={{_base_.model.data_preprocessor}},
    encoders=dict(
        image=dict(type='TimmEncoder', model_name='resnet18', layers=[1, 1, 1, 1],
                   channels=[16, 32, 64, 128], stem_width=16),
        audio=dict(type='AudioCNNEncoder', num_mel_bins=64, channels=(8, 16, 32), out_dim=64)),
    fusion=dict(type='MLBFusion', out_dim=128, hidden_dim=256, dropout=0.1),
    head=dict(type='ClsHead', num_classes=3, dropout=0.1),
)
model = dict(
    _delete_=True,
    type='KnowledgeDistiller',
    student=student,
    teacher=dict(config='configs/classification/mmshapes_av.py',
                 checkpoint='work_dirs/mmshapes_av/epoch_30.pth'),
    logit_loss=dict(type='KDLoss', temperature=4.0, loss_weight=1.0),
    feature_losses=[dict(student='fusion', teacher='fusion',
                         loss=dict(type='FitNetsLoss', loss_weight=1.0, normalize=True))],
)
train_cfg = dict(max_epochs=12)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=1, end=12, eta_min=1e-5,
         convert_to_iter_based=True),
]
