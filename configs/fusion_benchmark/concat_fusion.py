_base_ = '../_base_/fusion_benchmark_av.py'

model = dict(fusion=dict(type='ConcatFusion', out_dim=128, hidden_dims=(256,)))
