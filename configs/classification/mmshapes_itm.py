# Image-text matching on MMShapes: a small ResNet (timm) over the image, an
# n-gram CNN over the caption ("two red circles" becomes one feature), low-rank
# bilinear fusion (MLB) and a 2-way classifier (match / mismatch).
_base_ = [
    '../_base_/datasets/mmshapes_itm_dataset.py',
    '../_base_/schedules/adamw_12e.py',
    '../_base_/default_runtime.py',
]

text_vocab_size = 64

model = dict(
    type='MultiModalClassifier',
    data_preprocessor=dict(
        type='MultiModalDataPreprocessor',
        image=dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
                   bgr_to_rgb=True),
        text=dict(tokenizer=dict(type='WordLevelTokenizer', max_vocab_size=text_vocab_size),
                  max_length=32)),
    encoders=dict(
        image=dict(type='TimmEncoder', model_name='resnet18', layers=[1, 1, 1, 1],
                   channels=[32, 64, 128, 256], stem_width=32),
        # mean pooling: summed n-gram features saturate MLB's tanh, and a
        # caption then barely moves the fused vector
        text=dict(type='TextCNNEncoder', vocab_size=text_vocab_size, embed_dim=64, out_dim=256,
                  pooling='mean')),
    fusion=dict(type='MLBFusion', out_dim=256, hidden_dim=1024, dropout=0.1),
    head=dict(type='ClsHead', num_classes=2, dropout=0.1),
)
optim_wrapper = dict(optimizer=dict(lr=2e-3))

# 4000 image-caption pairs: batch 32 and 30 epochs give the ~3700 updates
# the matching needs (batch 64 for 12 epochs stays near chance)
train_dataloader = dict(batch_size=32)
train_cfg = dict(max_epochs=30)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=1, end=30, eta_min=1e-5,
         convert_to_iter_based=True),
]
auto_scale_lr = dict(base_batch_size=32)
