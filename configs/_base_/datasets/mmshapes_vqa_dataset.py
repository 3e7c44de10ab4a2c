# VQA on the embedded MMShapes dataset (generated under data_root on first use).
dataset_type = 'MMShapesVQADataset'
data_root = 'data/mmshapes'

train_pipeline = [
    # decoding the PNGs is half of this pipeline's time; the 2000 decoded
    # training images take 24 MB, so keep them after the first epoch
    dict(type='LoadImageFromFile', cache_size=4096),
    dict(type='PackMultiModalInputs', inputs=dict(image='img', text='question')),
]
test_pipeline = train_pipeline

# MMShapes images are 64x64 PNGs: the main process loads a batch in ~1/17 of
# the time a CPU training step takes, so worker processes only compete with
# the model for the cores (tools/analysis_tools/benchmark.py on 2 cores: 0 and
# 1 workers give the same throughput, 2 workers clearly less). Raise
# num_workers for large images or many cores.
train_dataloader = dict(
    batch_size=64,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root, split='train',
                 pipeline=train_pipeline),
)
val_dataloader = dict(
    batch_size=128,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, split='val',
                 pipeline=test_pipeline),
)
val_evaluator = dict(type='VQAAccuracy')
test_dataloader = val_dataloader
test_evaluator = val_evaluator
