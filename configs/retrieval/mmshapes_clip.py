# CLIP-style contrastive pretraining on MMShapes captions, from scratch: a
# small ResNet (timm) image tower and an n-gram CNN text tower ("two red
# circles" must stay one feature: a bag of words cannot tell "a red circle
# and a blue square" from "a blue circle and a red square"), each projected
# to a shared 256-d space, InfoNCE with a learnt, clamped temperature.
# Swap the loss for SigLIP with one key (see mmshapes_siglip.py). Evaluated
# by image<->text retrieval Recall@1/5/10 on the 500 val images.
_base_ = [
    '../_base_/datasets/mmshapes_caption_dataset.py',
    '../_base_/schedules/adamw_12e.py',
    '../_base_/default_runtime.py',
]

text_vocab_size = 64

model = dict(
    type='DualEncoder',
    data_preprocessor=dict(
        type='MultiModalDataPreprocessor',
        image=dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
                   bgr_to_rgb=True),
        text=dict(tokenizer=dict(type='WordLevelTokenizer', max_vocab_size=text_vocab_size),
                  max_length=32)),
    encoders=dict(
        # ResNet-10 at an eighth of the width with a deep 3x3 stem (the 7x7
        # 64-channel stem alone costs more than this whole network): 128-d
        # on 64x64 images, ~5 MMACs an image, so the contrastive run fits
        # in 15 minutes on 2 CPU cores
        image=dict(type='TimmEncoder', model_name='resnet18', layers=[1, 1, 1, 1],
                   channels=[16, 32, 64, 128], stem_type='deep', stem_width=8),
        # summed n-gram features count repeated phrases ("two red circles")
        text=dict(type='TextCNNEncoder', vocab_size=text_vocab_size, embed_dim=64,
                  out_dim=256, kernel_size=3, pooling='sum')),
    embed_dim=256,
    projections=dict(image=dict(hidden_dims=[256]), text=dict(hidden_dims=[256])),
    loss=dict(type='ClipLoss'),
    max_logit_scale=100.0,
)

# open_clip: no weight decay on the temperature, biases and norms
optim_wrapper = dict(
    optimizer=dict(lr=2e-3, weight_decay=0.05),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0,
                       custom_keys={'logit_scale': dict(decay_mult=0.0),
                                    'logit_bias': dict(decay_mult=0.0)}))
max_epochs = 12
train_cfg = dict(max_epochs=max_epochs, val_interval=4)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=1, end=max_epochs, eta_min=1e-5,
         convert_to_iter_based=True),
]
default_hooks = dict(checkpoint=dict(interval=4, save_best='retrieval/mean', rule='greater'))
# batch 64: at a fixed compute budget, twice the updates of batch 128 learn
# faster than twice the in-batch negatives
train_dataloader = dict(batch_size=64)
auto_scale_lr = dict(base_batch_size=64)
