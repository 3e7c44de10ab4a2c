# The distillation student trained alone: the audio-visual task of
# configs/classification/mmshapes_av.py with a model a fifth of its size
# (ResNet-10 at 1/8 width, a narrower log-mel CNN, a rank-256 MLB), trained
# for 12 epochs of its 30. configs/distillation/mmshapes_av_kd.py trains the
# same student with the full model as teacher.
_base_ = '../classification/mmshapes_av.py'

model = dict(
    encoders=dict(
        image=dict(channels=[16, 32, 64, 128], stem_width=16),
        audio=dict(channels=(8, 16, 32), out_dim=64)),
    fusion=dict(out_dim=128, hidden_dim=256),
)
train_cfg = dict(max_epochs=12)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=1, end=12, eta_min=1e-5,
         convert_to_iter_based=True),
]
