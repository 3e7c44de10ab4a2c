# The full fine-tuning reference of mmshapes_itm_minilm_lora.py: the same
# image-text matching model with every MiniLM weight trained and saved. A
# pretrained BERT-style tower is fine-tuned whole at a rate near 2e-5 (BERT,
# Devlin et al. 2019: 2e-5 to 5e-5); at the adapters' 2e-4 it unlearns its
# pretraining (docs/fine_tuning.md has both runs), so the tower gets a
# hundredth of the quick-start's rate.
_base_ = './mmshapes_itm_minilm_lora.py'

model = dict(encoders=dict(text=dict(peft=None, save_frozen=True)))
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'encoders.text': dict(lr_mult=0.01)}))
