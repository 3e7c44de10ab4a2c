# The quick-start with a 2-layer BERT (transformers, built from a config with
# random weights, offline) in place of the bag of word embeddings.
_base_ = './mmshapes_vqa.py'

model = dict(encoders=dict(text=dict(
    _delete_=True, type='HFTextEncoder', pooling='sum', config=dict(
        model_type='bert', vocab_size={{_base_.text_vocab_size}}, hidden_size=128,
        num_hidden_layers=2, num_attention_heads=2, intermediate_size=256,
        max_position_embeddings=32))))
