_base_ = '../_base_/fusion_benchmark_av.py'

model = dict(fusion=dict(type='MFBFusion', out_dim=128, factor_k=5))
