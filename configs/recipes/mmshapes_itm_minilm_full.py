# The full fine-tuning reference of mmshapes_itm_minilm_lora.py: the same
# image-text matching model, with every weight of the pretrained MiniLM text
# tower (MINILM_DIR, as README shows) trained and saved. A pretrained
# BERT-style tower is fine-tuned whole at a rate near 2e-5 (BERT, Devlin et
# al. 2019: 2e-5 to 5e-5); at the adapters' 2e-4 it unlearns its pretraining
# (docs/fine_tuning.md has both runs), so the tower gets a hundredth of the
# quick-start's rate.
_base_ = '../classification/mmshapes_itm.py'

minilm = '{{$MINILM_DIR:checkpoints/all-MiniLM-L6-v2}}'
model = dict(
    data_preprocessor=dict(text=dict(
        tokenizer=dict(_delete_=True, type='HFTokenizer', name_or_path=minilm),
        # MMShapes captions are at most ~20 word pieces
        max_length=24)),
    encoders=dict(text=dict(_delete_=True, type='HFTextEncoder', pretrained=minilm,
                            pooling='mean')),
)
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'encoders.text': dict(lr_mult=0.01)}))
