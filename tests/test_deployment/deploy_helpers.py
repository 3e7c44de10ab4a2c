"""Bundles shared by the deployment tests, exported once per test session."""
import functools
import os.path as osp
import tempfile

import torch
from conftest import small_cfg


@functools.lru_cache(maxsize=None)
def exported(config: str, data_root: str, fmt: str = 'onnx'):
    """``(model, export result, work dir)`` for a randomly initialised quick-start
    model on the small MMShapes copy, exported once (ONNX by default)."""
    from mmfusion.apis import init_model
    from mmfusion.deployment.export import export_bundle

    work = tempfile.mkdtemp(prefix='mmfusion_deploy_')
    cfg_path = small_cfg(config, data_root, work, max_epochs=1)
    torch.manual_seed(0)
    model = init_model(cfg_path, None)
    result = export_bundle(model, model.cfg, osp.join(work, 'bundle'), fmt=fmt, batch_size=8)
    return model, result, work
