# The supervised reference of the zero-shot colour classifier
# (mmshapes_clip_zeroshot_colors.py): the same image tower as the contrastive
# model (mmshapes_clip.py), trained on the colour labels (which of the six
# colours are in the picture), evaluated with the same metric (mAP).
_base_ = '../multi_task/mmshapes_multilabel.py'

model = dict(encoders=dict(image=dict(
    _delete_=True, type='TimmEncoder', model_name='resnet18', layers=[1, 1, 1, 1],
    channels=[16, 32, 64, 128], stem_type='deep', stem_width=8)))
val_evaluator = dict(type='MultiLabelMetric', items=('precision', 'recall', 'f1-score', 'mAP'))
test_evaluator = val_evaluator
