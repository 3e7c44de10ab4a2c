# VQA on MMShapes: a RegNetX-200MF over the 4x4 image grid, a small BERT over the
# question, question-guided top-down attention over the grid cells, and an
# answer classifier trained on VQA soft scores. Runs on CPU in minutes.
_base_ = [
    '../_base_/datasets/mmshapes_vqa.py',
    '../_base_/schedules/adamw_12e.py',
    '../_base_/default_runtime.py',
]

# Both vocabularies are learnt from the training questions and answers; the
# checkpoint stores them, and the work dir gets a readable copy.
train_set = {{_base_.train_dataloader.dataset}}
text_vocab_size = 128

model = dict(
    type='MultiModalClassifier',
    data_preprocessor=dict(
        type='MultiModalDataPreprocessor',
        image=dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
                   bgr_to_rgb=True),
        text=dict(tokenizer=dict(type='WordLevelTokenizer', dataset=train_set,
                                 text_key='question', max_vocab_size=text_vocab_size),
                  max_length=24)),
    encoders=dict(
        image=dict(type='TimmEncoder', model_name='regnetx_002', output_stride=16),
        text=dict(type='HFTextEncoder', pooling='mean', config=dict(
            model_type='bert', vocab_size=text_vocab_size, hidden_size=128,
            num_hidden_layers=2, num_attention_heads=2, intermediate_size=256,
            max_position_embeddings=32))),
    fusion=dict(type='TopDownAttentionFusion', out_dim=512, query='text', context='image',
                hidden_dim=256),
    head=dict(type='VQAHead', answer_vocab=dict(dataset=train_set), hidden_dim=512,
              dropout=0.2),
)
