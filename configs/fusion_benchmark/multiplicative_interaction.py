_base_ = '../_base_/fusion_benchmark_av.py'

model = dict(fusion=dict(type='MultiplicativeInteractionFusion', out_dim=128, context='audio'))
