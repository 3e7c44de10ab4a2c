# VQA on the embedded MMShapes dataset (generated under data_root on first use).
dataset_type = 'MMShapesVQADataset'
data_root = 'data/mmshapes'

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='PackMultiModalInputs', inputs=dict(image='img', text='question')),
]
test_pipeline = train_pipeline

# MMShapes images are 64x64 PNGs: the main process loads a batch in ~1/16 of
# the time a CPU training step takes, so worker processes would only compete
# with the model for the cores (measured with tools/analysis_tools/benchmark.py:
# end-to-end / compute-only 0.97 with 0 workers, 0.82 with 1, 0.68 with 2 on
# 2 cores). Raise num_workers for large images or many cores.
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
