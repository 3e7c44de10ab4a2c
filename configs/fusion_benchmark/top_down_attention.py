_base_ = '../_base_/fusion_benchmark_av.py'

model = dict(fusion=dict(type='TopDownAttentionFusion', out_dim=128, query='audio', context='image',
                         hidden_dim=256, dropout=0.1))
