_base_ = '../_base_/fusion_benchmark_av.py'

model = dict(fusion=dict(type='MLBFusion', out_dim=128, hidden_dim=512))
