_base_ = '../_base_/fusion_benchmark_av.py'

model = dict(fusion=dict(type='BLOCKFusion', out_dim=128, mm_dim=256, chunks=8, rank=4))
