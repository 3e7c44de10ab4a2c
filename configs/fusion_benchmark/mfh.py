_base_ = '../_base_/fusion_benchmark_av.py'

model = dict(fusion=dict(type='MFHFusion', out_dim=128, order=2, factor_k=5))
