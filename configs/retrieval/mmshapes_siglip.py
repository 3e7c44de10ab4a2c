# The same dual encoder trained with SigLIP's pairwise sigmoid loss instead of
# InfoNCE: one key changes (the model then learns a logit bias too, initialised
# as in the paper: scale 10, bias -10).
_base_ = './mmshapes_clip.py'

model = dict(loss=dict(_delete_=True, type='SigLipLoss'))
