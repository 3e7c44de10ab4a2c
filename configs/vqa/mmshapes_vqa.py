# VQA on MMShapes, the quick-start: a small ResNet (timm) over the image, a bag
# of word embeddings over the question, multimodal low-rank bilinear pooling
# (MLB) and an answer classifier. Trains on 2 CPU cores in a few minutes.
_base_ = [
    '../_base_/datasets/mmshapes_vqa_dataset.py',
    '../_base_/schedules/adamw_12e.py',
    '../_base_/default_runtime.py',
]

# Both vocabularies (the question words and the answers) are learnt from the
# training set, whichever it is; the checkpoint stores them, and the work dir
# gets a readable copy.
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
        # ResNet-10 at a quarter width: a 2x2 grid of 256-d cells on 64x64 images
        image=dict(type='TimmEncoder', model_name='resnet18', layers=[1, 1, 1, 1],
                   channels=[32, 64, 128, 256], stem_width=32),
        text=dict(type='WordEmbeddingEncoder', vocab_size=text_vocab_size, embed_dim=128)),
    fusion=dict(type='MLBFusion', out_dim=512, hidden_dim=1024, dropout=0.1),
    head=dict(type='VQAHead', hidden_dim=0, dropout=0.1,
              # softmax over answers against the normalised VQA soft scores
              loss=dict(type='CrossEntropyLoss')),
)
optim_wrapper = dict(optimizer=dict(lr=2e-3))
