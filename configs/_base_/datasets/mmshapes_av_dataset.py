# Audio-visual classification on the embedded MMShapes dataset: which shape is
# making the sound? The pitch of the beeps gives the sounding object's colour,
# the picture shows which shape has that colour; neither alone is enough.
dataset_type = 'MMShapesClsDataset'
data_root = 'data/mmshapes'

# Kaldi-style log-mel (as the Audio Spectrogram Transformer uses): 64 bins,
# 100 frames of 10 ms for the 1 s clips.
log_mel = dict(type='AudioLogMel',
               feature_extractor=dict(type='ASTFeatureExtractor', num_mel_bins=64,
                                      max_length=100))
train_pipeline = [
    dict(type='LoadImageFromFile', cache_size=4096),
    # the label does not depend on where the objects are, so flips are free
    # extra pictures: with 2000 scenes the model otherwise memorises them
    dict(type='RandomFlip', prob=0.75, direction=['horizontal', 'vertical', 'diagonal']),
    dict(type='LoadAudioFromFile', sample_rate=16000),
    dict(type='AudioRandomGain', min_gain_db=-6.0, max_gain_db=6.0),
    dict(type='AudioRandomTimeShift', max_shift=0.2, mode='roll'),
    log_mel,
    dict(type='PackMultiModalInputs', inputs=dict(image='img', audio='audio')),
]
test_pipeline = [
    dict(type='LoadImageFromFile', cache_size=4096),
    dict(type='LoadAudioFromFile', sample_rate=16000),
    log_mel,
    dict(type='PackMultiModalInputs', inputs=dict(image='img', audio='audio')),
]

train_dataloader = dict(
    batch_size=64,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type=dataset_type, task='av', data_root=data_root, split='train',
                 pipeline=train_pipeline),
)
val_dataloader = dict(
    batch_size=128,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, task='av', data_root=data_root, split='val',
                 pipeline=test_pipeline),
)
val_evaluator = [
    dict(type='Accuracy'),
    dict(type='SingleLabelMetric', items=('precision', 'recall', 'f1-score', 'mcc')),
]
test_dataloader = val_dataloader
test_evaluator = val_evaluator
