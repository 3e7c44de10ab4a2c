# MMShapes VQA with the project's own ProductFusion in place of top-down attention.
# `mmfusion::` finds the base config inside the installed mmfusion package.
_base_ = 'mmfusion::vqa/mmshapes_vqa.py'

# Registers ProductFusion; the `example_project` folder must be importable
# (run from this project's folder, or put it on PYTHONPATH).
custom_imports = dict(imports=['example_project'], allow_failed_imports=False)

model = dict(fusion=dict(_delete_=True, type='ProductFusion', out_dim=512, dropout=0.1))
