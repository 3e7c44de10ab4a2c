"""Untrained models of the quick-start configs, saved as checkpoints the way
the Runner saves them (state dict with the vocabularies, the training set's
metainfo), for tests of inference and serving that must stay fast."""
import os
import os.path as osp
from typing import Optional, Tuple

import torch
from conftest import REPO_ROOT, point_datasets_at


def tiny_checkpoint(config: str, data_root: str, out_dir: str,
                    options: Optional[dict] = None, seed: int = 0) -> Tuple[str, str]:
    """Write ``config`` pointed at the small MMShapes copy and an untrained
    checkpoint of its model; returns (config path, checkpoint path)."""
    from mmengine.config import Config

    from mmfusion.apis import init_model
    from mmfusion.registry import DATASETS

    cfg = Config.fromfile(osp.join(REPO_ROOT, config))
    point_datasets_at(cfg, data_root)
    if options:
        cfg.merge_from_dict(options)
    os.makedirs(out_dir, exist_ok=True)
    cfg_path = osp.join(out_dir, osp.basename(config))
    cfg.dump(cfg_path)
    torch.manual_seed(seed)
    model = init_model(cfg_path)  # vocabularies from the small training set
    train_set = DATASETS.build(dict(cfg.train_dataloader.dataset, pipeline=[]))
    ckpt_path = osp.join(out_dir, 'tiny.pth')
    torch.save(dict(state_dict=model.state_dict(),
                    meta=dict(dataset_meta=dict(classes=tuple(train_set.metainfo['classes'])))
                    if train_set.metainfo.get('classes') else dict()), ckpt_path)
    return cfg_path, ckpt_path
