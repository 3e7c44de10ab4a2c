# Unimodal baseline: the sound alone, no image (same audio encoder, head and
# schedule). The pitch tells the sounding object's colour, which says little
# about its shape.
_base_ = './mmshapes_av.py'

audio_only_train = [
    dict(type='LoadAudioFromFile', sample_rate=16000),
    dict(type='AudioRandomGain', min_gain_db=-6.0, max_gain_db=6.0),
    dict(type='AudioRandomTimeShift', max_shift=0.2, mode='roll'),
    {{_base_.log_mel}},
    dict(type='PackMultiModalInputs', inputs=dict(audio='audio')),
]
audio_only_test = [
    dict(type='LoadAudioFromFile', sample_rate=16000),
    {{_base_.log_mel}},
    dict(type='PackMultiModalInputs', inputs=dict(audio='audio')),
]
train_dataloader = dict(dataset=dict(pipeline=audio_only_train))
val_dataloader = dict(dataset=dict(pipeline=audio_only_test))
test_dataloader = dict(dataset=dict(pipeline=audio_only_test))

model = dict(
    data_preprocessor=dict(image=None),
    encoders=dict(image=None),
    fusion=dict(_delete_=True, type='ConcatFusion', out_dim=256, hidden_dims=[1024],
                dropout=0.1),
)
