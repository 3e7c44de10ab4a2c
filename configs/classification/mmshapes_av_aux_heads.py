# Audio-visual quick-start with unimodal auxiliary heads (as gradient blending's
# unimodal branches, Wang et al., CVPR 2020): a classifier on each encoder's
# vector with its own loss weight keeps both encoders learning; each head's
# true-class probability is logged as contrib_<modality> every iteration.
_base_ = './mmshapes_av.py'

model = dict(
    aux_heads=dict(
        image=dict(type='ClsHead', num_classes=3,
                   loss=dict(type='CrossEntropyLoss', loss_weight=0.5)),
        audio=dict(type='ClsHead', num_classes=3,
                   loss=dict(type='CrossEntropyLoss', loss_weight=0.5))))
