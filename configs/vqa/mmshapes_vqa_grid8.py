# The VQA quick-start read off an 8x8 image grid instead of 2x2: the same
# ResNet cut after its second stage (timm features_only, stride 8), so the
# fused image vector is the mean of 8x8 cells of 64 channels. Grad-CAM reads
# its maps off the last grid, and the quick-start's 2x2 grid is too coarse to
# tell which of the 2-4 shapes a question is about (docs/interpretability.md,
# the pointing game).
_base_ = './mmshapes_vqa.py'

model = dict(encoders=dict(image=dict(out_indices=(2, ))))
