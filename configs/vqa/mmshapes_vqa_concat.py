# Early fusion: concatenate the pooled image and question vectors, then an MLP.
_base_ = './mmshapes_vqa.py'

model = dict(fusion=dict(_delete_=True, type='ConcatFusion', out_dim=512, hidden_dims=[1024],
                         dropout=0.1))
