_base_ = '../_base_/fusion_benchmark_av.py'

model = dict(fusion=dict(type='PerceiverFusion', out_dim=128, num_latents=8, num_blocks=1,
                         num_self_attn_layers=1))
