# The audio-visual quick-start read off an 8x8 image grid instead of 2x2, as
# configs/vqa/mmshapes_vqa_grid8.py does for VQA: the same ResNet cut after
# its second stage (timm features_only, stride 8), so the image vector is
# the mean of 8x8 cells of 64 channels. The shapes are 8-16 pixels wide, so a
# cell still sees one shape's colour and outline; the 2x2 grid of the full
# network has to mix the 2-4 shapes of a scene into each cell.
_base_ = './mmshapes_av.py'

model = dict(encoders=dict(image=dict(out_indices=(2, ))))
