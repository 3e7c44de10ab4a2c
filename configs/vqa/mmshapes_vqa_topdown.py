# Question-guided top-down attention (Anderson et al., 2018) over the image's
# grid cells instead of bilinear pooling of pooled vectors.
_base_ = './mmshapes_vqa.py'

model = dict(fusion=dict(_delete_=True, type='TopDownAttentionFusion', out_dim=512,
                         query='text', context='image', hidden_dim=256, dropout=0.1))
