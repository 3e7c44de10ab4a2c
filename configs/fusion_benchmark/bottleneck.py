_base_ = '../_base_/fusion_benchmark_av.py'

model = dict(fusion=dict(type='BottleneckFusion', out_dim=128, num_layers=2, fusion_layer=1,
                         num_heads=4))
