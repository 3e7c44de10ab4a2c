_base_ = '../_base_/fusion_benchmark_av.py'

model = dict(fusion=dict(type='CrossAttentionFusion', out_dim=128, query='audio', num_heads=4))
