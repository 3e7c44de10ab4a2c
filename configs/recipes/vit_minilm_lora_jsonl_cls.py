# Recipe: fine-tune a ViT image tower at 224 px and the pretrained MiniLM text
# tower on your own JSON-lines classification data. Copy this file, then set:
#   data_root, train_ann, val_ann  your files, one JSON object per line:
#                                  {"img_path": "images/1.png", "text": "...", "label": 1}
#   classes                        your class names (label = index or name)
#   vit_checkpoint                 a local timm weights file for the ViT, e.g.
#                                  vit_small_patch16_224.augreg_in21k_ft_in1k's
#                                  model.safetensors (None: random initialisation)
#   MINILM_DIR                     the all-MiniLM-L6-v2 folder (README shows the
#                                  one-line command for the offline package)
# As written it runs on MMShapes' image-text matching lists.
#
# What it does (docs/fine_tuning.md explains each piece):
# * text tower: MiniLM frozen, LoRA adapters (rank 8) on its attention
#   projections; checkpoints keep only the trainable weights;
# * image tower: ViT-S/16 at 224 px, fully fine-tuned with layer-wise
#   learning-rate decay 0.75 (BEiT); with a pretrained vit_checkpoint, LoRA
#   instead: model.encoders.image.peft=dict(type='LoraConfig', r=8,
#   target_modules=['qkv']);
# * gradient checkpointing in both towers (memory for compute:
#   tools/analysis_tools/train_step_memory.py measures it);
# * bf16 autocast where the device has it (CPU, Ampere GPUs);
# * cross-attention fusion (text tokens attend to image patches) + classifier.
_base_ = ['../_base_/default_runtime.py']

data_root = 'data/mmshapes'
train_ann = 'classification/train_itm.jsonl'
val_ann = 'classification/val_itm.jsonl'
classes = ['mismatch', 'match']
img_size = 224
vit_checkpoint = None
minilm = '{{$MINILM_DIR:checkpoints/all-MiniLM-L6-v2}}'

pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='MultiModalResize', scale=(img_size, img_size), keep_ratio=False),
    dict(type='PackMultiModalInputs', inputs=dict(image='img', text='text')),
]
train_dataloader = dict(
    batch_size=32,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='ListClsDataset', data_root=data_root, ann_file=train_ann,
                 classes=classes, pipeline=pipeline),
)
val_dataloader = dict(
    batch_size=64,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='ListClsDataset', data_root=data_root, ann_file=val_ann,
                 classes=classes, pipeline=pipeline),
)
test_dataloader = val_dataloader
val_evaluator = [dict(type='Accuracy'), dict(type='SingleLabelMetric')]
test_evaluator = val_evaluator

model = dict(
    type='MultiModalClassifier',
    data_preprocessor=dict(
        type='MultiModalDataPreprocessor',
        image=dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
                   bgr_to_rgb=True),
        text=dict(tokenizer=dict(type='HFTokenizer', name_or_path=minilm), max_length=32)),
    encoders=dict(
        image=dict(type='TimmEncoder', model_name='vit_small_patch16_224', img_size=img_size,
                   checkpoint=vit_checkpoint, drop_path_rate=0.1, grad_checkpointing=True),
        text=dict(type='HFTextEncoder', pretrained=minilm, pooling='mean',
                  peft=dict(type='LoraConfig', r=8, lora_alpha=16, lora_dropout=0.1,
                            target_modules=['query', 'key', 'value']),
                  grad_checkpointing=True, save_frozen=False)),
    # the question-like text attends to the image patches
    fusion=dict(type='CrossAttentionFusion', query='text', out_dim=256, num_heads=4),
    head=dict(type='ClsHead', num_classes=len(classes), dropout=0.1),
)

optim_wrapper = dict(
    type='AutocastOptimWrapper',
    dtype='bfloat16',
    optimizer=dict(type='AdamW', lr=2e-4, weight_decay=0.05, betas=(0.9, 0.999)),
    clip_grad=dict(max_norm=1.0),
    constructor='LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay=dict(image=0.75, text=0.9),
                       norm_decay_mult=0.0, bias_decay_mult=0.0),
)
max_epochs = 10
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=1, end=max_epochs, eta_min=1e-6,
         convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=1)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=32, enable=False)
