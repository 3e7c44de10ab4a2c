# Multi-modal Factorized Bilinear pooling (Yu et al., 2017) of the pooled
# image and question vectors.
_base_ = './mmshapes_vqa.py'

model = dict(fusion=dict(_delete_=True, type='MFBFusion', out_dim=512, factor_k=5, dropout=0.1))
