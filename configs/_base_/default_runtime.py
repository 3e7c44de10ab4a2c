default_scope = 'mmfusion'

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # keep the last 2 epochs and the best one by the task's main metric
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=2, save_best='auto'),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    # warns once per epoch how many corrupt samples on_bad_sample='skip' replaced
    bad_samples=dict(type='BadSampleReportHook'),
)
custom_hooks = [
    dict(type='PlainCheckpointHook'),  # checkpoints load with torch.load(weights_only=True)
    dict(type='EpochSeedHook'),
    dict(type='SaveVocabularyHook'),
    # stops at start-up when a given vocabulary or class count does not fit the training data
    dict(type='VocabularyCheckHook'),
]

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    # timeout: seconds a collective waits for a hung rank before failing
    dist_cfg=dict(backend='nccl', timeout=1800),
)

vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='Visualizer', vis_backends=vis_backends)
log_processor = dict(by_epoch=True, window_size=50)
log_level = 'INFO'

load_from = None
resume = False
# A fixed seed: runs are reproducible and resume continues exactly.
randomness = dict(seed=0, deterministic=False)
