# Audio-visual quick-start trained with modality dropout: each training sample
# loses its image or its sound with probability 0.2 each (never both), so the
# fusion module and the head also learn to answer from one modality and the
# model keeps working when one is missing at test time
# (tools/test.py ... --remove-modality image). See docs/missing_modalities.md.
_base_ = './mmshapes_av.py'

dropout_train = [
    dict(type='LoadImageFromFile', cache_size=4096),
    dict(type='RandomFlip', prob=0.75, direction=['horizontal', 'vertical', 'diagonal']),
    dict(type='LoadAudioFromFile', sample_rate=16000),
    dict(type='AudioRandomGain', min_gain_db=-6.0, max_gain_db=6.0),
    dict(type='AudioRandomTimeShift', max_shift=0.2, mode='roll'),
    {{_base_.log_mel}},
    dict(type='ModalityDropout', modalities=['image', 'audio'], prob=0.2),
    dict(type='PackMultiModalInputs', inputs=dict(image='img', audio='audio')),
]
train_dataloader = dict(dataset=dict(pipeline=dropout_train))
