# Shared by every config in configs/fusion_benchmark/: the MMShapes audio-visual
# task with fixed encoders, head, data and schedule, so that configs differ
# only in model.fusion. Vector fusions take each encoder's pooled vector;
# token fusions take the image's 2x2 grid cells (256-d) and the audio's time
# steps (128-d).
_base_ = [
    './datasets/mmshapes_av_dataset.py',
    './schedules/adamw_12e.py',
    './default_runtime.py',
]

model = dict(
    type='MultiModalClassifier',
    data_preprocessor=dict(
        type='MultiModalDataPreprocessor',
        image=dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
                   bgr_to_rgb=True)),
    encoders=dict(
        image=dict(type='TimmEncoder', model_name='resnet18', layers=[1, 1, 1, 1],
                   channels=[32, 64, 128, 256], stem_width=32),
        audio=dict(type='AudioCNNEncoder', num_mel_bins=64, channels=(16, 32, 64), out_dim=128)),
    fusion=dict(),  # set by each benchmark config
    head=dict(type='ClsHead', num_classes=3, dropout=0.1),
)
optim_wrapper = dict(optimizer=dict(lr=2e-3))

# 8 epochs, so that every method gets well clear of the majority class (3
# epochs left the slow starters, TensorFusion and GatedCrossAttentionFusion, at
# chance); all 23 methods train in about 70 minutes on one CPU thread. This is
# a comparison of how fast each method learns, not of where it ends up: the
# full 40-epoch schedule of classification/mmshapes_av.py reaches 97.6.
# One thread makes each run deterministic on the CPU (with more, the order of
# floating-point reductions changes the trajectory) and leaves a core free.
env_cfg = dict(torch_num_threads=1)
train_dataloader = dict(batch_size=32)
train_cfg = dict(max_epochs=8)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=1, end=8, eta_min=1e-5,
         convert_to_iter_based=True),
]
