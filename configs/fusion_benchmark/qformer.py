_base_ = '../_base_/fusion_benchmark_av.py'

model = dict(fusion=dict(type='QFormerFusion', out_dim=128, num_queries=8, num_layers=2))
