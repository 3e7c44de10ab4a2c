_base_ = '../_base_/fusion_benchmark_av.py'

model = dict(fusion=dict(type='LowRankTensorFusion', out_dim=128, rank=4))
