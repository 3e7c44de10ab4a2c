_base_ = '../_base_/fusion_benchmark_av.py'

model = dict(fusion=dict(type='FiLMFusion', out_dim=128, target='image'))
