"""A randomly initialised audio-visual quick-start model and real batches of
the small MMShapes copy (``mmshapes_root``), shared by the analysis tests."""
import os.path as osp

import pytest
import torch
from conftest import REPO_ROOT, point_datasets_at
from mmengine.config import Config


@pytest.fixture(scope='module')
def av_setup(mmshapes_root):
    """(model in eval mode, raw val batches of 8) of configs/classification/mmshapes_av.py."""
    from mmfusion.analysis import build_loader
    from mmfusion.apis import init_model

    torch.manual_seed(0)
    cfg = Config.fromfile(osp.join(REPO_ROOT, 'configs/classification/mmshapes_av.py'))
    point_datasets_at(cfg, mmshapes_root)
    model = init_model(cfg, None)
    loader = build_loader(model.cfg, 'test', batch_size=8)
    return model, list(loader)
