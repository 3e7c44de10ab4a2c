# The quick-start VQA model (configs/vqa/mmshapes_vqa.py) on 224x224 JPEG
# images: the same ResNet-10 at a quarter width, now on a 7x7 grid of cells.
# Create the data first:
#   python tools/dataset_converters/mmshapes_jpeg.py --out-dir data/mmshapes_224 --img-size 224
_base_ = [
    '../_base_/datasets/mmshapes_vqa_224_dataset.py',
    '../_base_/schedules/adamw_12e.py',
    '../_base_/default_runtime.py',
]

text_vocab_size = 128

model = dict(
    type='MultiModalClassifier',
    data_preprocessor=dict(
        type='MultiModalDataPreprocessor',
        image=dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
                   bgr_to_rgb=True),
        text=dict(tokenizer=dict(type='WordLevelTokenizer', max_vocab_size=text_vocab_size),
                  max_length=24)),
    encoders=dict(
        image=dict(type='TimmEncoder', model_name='resnet18', layers=[1, 1, 1, 1],
                   channels=[32, 64, 128, 256], stem_width=32),
        text=dict(type='WordEmbeddingEncoder', vocab_size=text_vocab_size, embed_dim=128)),
    fusion=dict(type='MLBFusion', out_dim=512, hidden_dim=1024, dropout=0.1),
    head=dict(type='VQAHead', hidden_dim=0, dropout=0.1, loss=dict(type='CrossEntropyLoss')),
)
optim_wrapper = dict(optimizer=dict(lr=2e-3))
