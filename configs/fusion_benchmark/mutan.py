_base_ = '../_base_/fusion_benchmark_av.py'

model = dict(fusion=dict(type='MUTANFusion', out_dim=128, hidden_dims=128, mm_dim=128, rank=5))
