# Audio-visual quick-start balanced with OGM-GE (Peng et al., CVPR 2022): each
# iteration scores the image and the sound alone (the MLB fusion with the other
# modality masked), scales down the gradient of the encoder of the one that
# dominates and adds gradient-sized noise (generalisation enhancement). Logs
# contrib_<modality>, ogm_coeff_<modality> and ogm_ratio_<modality>.
_base_ = './mmshapes_av.py'

custom_hooks = [
    dict(type='PlainCheckpointHook'),
    dict(type='EpochSeedHook'),
    dict(type='SaveVocabularyHook'),
    dict(type='VocabularyCheckHook'),
    dict(type='OGMGEHook', alpha=0.3),
]
