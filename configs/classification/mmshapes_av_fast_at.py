# Fast adversarial training (Wong et al., ICLR 2020) of the audio-visual
# quick-start against L-inf perturbations of its image: each training batch is
# replaced by an FGSM adversary of its image (eps = 4/255, random start, step
# 1.25 * eps), the audio left clean (AdversarialTrainingHook; attack='pgd'
# gives PGD-AT). It fine-tunes the quick-start's final checkpoint for 5
# epochs: train configs/classification/mmshapes_av.py first (or set
# load_from=None and train_cfg.max_epochs=30 to train adversarially from scratch).
_base_ = './mmshapes_av.py'

load_from = 'work_dirs/mmshapes_av/epoch_30.pth'
custom_hooks = [
    dict(type='PlainCheckpointHook'),
    dict(type='EpochSeedHook'),
    dict(type='SaveVocabularyHook'),
    dict(type='VocabularyCheckHook'),
    dict(type='AdversarialTrainingHook', modalities=['image'], attack='fgsm', eps=4 / 255),
]
train_cfg = dict(max_epochs=5)
optim_wrapper = dict(optimizer=dict(lr=3e-4))
param_scheduler = [
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=5, eta_min=1e-5,
         convert_to_iter_based=True),
]
