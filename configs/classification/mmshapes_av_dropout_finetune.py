# Second stage for the audio-visual quick-start: fine-tune a trained
# mmshapes_av.py model for 6 epochs with the sound dropped from one training
# sample in five (ModalityDropout on 'audio' only: the image is never dropped,
# because the sound alone cannot answer and removing the image teaches
# nothing). Training with dropout from the start delays the moment the model
# learns to combine the pitch with the picture (the joint accuracy ended at
# 85-90); here the first stage has learnt it, and the short second stage adds
# the image-only answer for a missing sound. See docs/missing_modalities.md.
#   python tools/train.py configs/classification/mmshapes_av.py
#   python tools/train.py configs/classification/mmshapes_av_dropout_finetune.py \
#       --cfg-options load_from=work_dirs/mmshapes_av/epoch_30.pth
_base_ = './mmshapes_av.py'

load_from = 'work_dirs/mmshapes_av/epoch_30.pth'
train_dataloader = dict(dataset=dict(pipeline=[
    dict(type='LoadImageFromFile', cache_size=4096),
    dict(type='RandomFlip', prob=0.75, direction=['horizontal', 'vertical', 'diagonal']),
    dict(type='LoadAudioFromFile', sample_rate=16000),
    dict(type='AudioRandomGain', min_gain_db=-6.0, max_gain_db=6.0),
    dict(type='AudioRandomTimeShift', max_shift=0.2, mode='roll'),
    {{_base_.log_mel}},
    dict(type='ModalityDropout', modalities=['audio'], prob=0.2),
    dict(type='PackMultiModalInputs', inputs=dict(image='img', audio='audio')),
]))
optim_wrapper = dict(optimizer=dict(lr=2e-4))
train_cfg = dict(max_epochs=6)
param_scheduler = [dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=6, eta_min=1e-6,
                        convert_to_iter_based=True)]
