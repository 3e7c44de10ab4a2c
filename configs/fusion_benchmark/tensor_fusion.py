_base_ = '../_base_/fusion_benchmark_av.py'

model = dict(fusion=dict(type='TensorFusion', out_dim=128, hidden_dims=(128,)))
# The first Linear takes the flattened outer product, (256 + 1) * (128 + 1) =
# 33,153 inputs. AdamW moves every weight by about lr per step whatever its
# gradient, so at the shared lr one step shifts that layer's outputs by
# ~lr * 33k * |input| and its ReLUs die within the first epoch (the run then
# predicts the majority class). A 20x smaller lr for that layer alone keeps its
# per-step change in line with the other methods' layers.
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'fusion.mlp.0': dict(lr_mult=0.05)}))
