_base_ = '../_base_/fusion_benchmark_av.py'

# decision-level: the fusion outputs the class scores, the head adds no layer
model = dict(fusion=dict(type='LateFusion', out_dim=3, hidden_dims=(128,), combine='mean'),
             head=dict(fc=False))
