# Audio-text contrastive pretraining (CLAP-style: Elizalde et al., ICASSP 2023)
# is mmshapes_clip.py with the image tower swapped for an audio tower: the
# MMShapes sounds (whose pitch is the sounding object's colour) paired with
# their scene's captions, the same text tower, loss and retrieval metric
# (retrieval/a2t_R@1, t2a_R@1 ... instead of i2t, t2i). Any registered audio
# encoder is a tower; a user's own audio-caption data goes through
# CocoCaptionDataset(file_key=..., path_field='audio_path') or
# ListCaptionDataset(path_field='audio_path') the same way.
_base_ = './mmshapes_clip.py'

log_mel = dict(type='AudioLogMel',
               feature_extractor=dict(type='ASTFeatureExtractor', num_mel_bins=64,
                                      max_length=100))
train_pipeline = [
    dict(type='LoadAudioFromFile', sample_rate=16000),
    dict(type='AudioRandomGain', min_gain_db=-6.0, max_gain_db=6.0),
    log_mel,
    dict(type='PackMultiModalInputs', inputs=dict(audio='audio', text='text')),
]
test_pipeline = [
    dict(type='LoadAudioFromFile', sample_rate=16000),
    log_mel,
    dict(type='PackMultiModalInputs', inputs=dict(audio='audio', text='text'),
         meta_keys=('audio_path', 'img_id', 'item_idx', 'captions')),
]
audio_captions = dict(file_key='audio_file', path_field='audio_path')
train_dataloader = dict(dataset=dict(pipeline=train_pipeline, **audio_captions))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline, **audio_captions))
test_dataloader = val_dataloader

model = dict(
    data_preprocessor=dict(image=None),
    encoders=dict(
        image=None,
        audio=dict(type='AudioCNNEncoder', num_mel_bins=64, channels=(16, 32, 64),
                   out_dim=128)),
    projections=dict(_delete_=True, audio=dict(hidden_dims=[256]), text=dict(hidden_dims=[256])),
)
val_evaluator = dict(modalities=('audio', 'text'))
test_evaluator = val_evaluator
