"""Every shipped config parses, keeps to two levels of _base_, builds its model
and takes a training step."""
import ast
import glob
import os.path as osp

import pytest
import torch.nn as nn
from conftest import REPO_ROOT, point_datasets_at, require_config_extras
from mmengine.config import Config

from mmfusion.apis import resolve_vocabularies
from mmfusion.registry import MODELS
from mmfusion.utils import register_all_modules

CONFIGS = sorted(p for p in glob.glob(osp.join(REPO_ROOT, 'configs', '*', '*.py'))
                 if '_base_' not in p)


def base_depth(path: str) -> int:
    """Levels of ``_base_`` inheritance above a config file."""
    tree = ast.parse(open(path).read())
    bases = []
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, 'id', '') == '_base_'
                                                for t in node.targets):
            value = ast.literal_eval(node.value)
            bases = [value] if isinstance(value, str) else list(value)
    if not bases:
        return 0
    return 1 + max(base_depth(osp.join(osp.dirname(path), b)) for b in bases)


def test_base_depth_counts_levels():
    assert base_depth(osp.join(REPO_ROOT, 'configs/_base_/default_runtime.py')) == 0
    assert base_depth(osp.join(REPO_ROOT, 'configs/vqa/mmshapes_vqa.py')) == 1
    assert base_depth(osp.join(REPO_ROOT, 'configs/vqa/mmshapes_vqa_mfb.py')) == 2


@pytest.mark.parametrize('path', CONFIGS, ids=[osp.relpath(p, REPO_ROOT) for p in CONFIGS])
def test_config_builds_its_model(path, mmshapes_root, monkeypatch):
    assert base_depth(path) <= 2
    require_config_extras(path, monkeypatch)
    register_all_modules()
    cfg = Config.fromfile(path)
    point_datasets_at(cfg, mmshapes_root)
    if cfg.model.type == 'KnowledgeDistiller':  # built with a fresh teacher in test_distiller.py
        pytest.skip('a distillation config needs a trained teacher checkpoint')
    resolve_vocabularies(cfg)
    model = MODELS.build(cfg.model)
    if cfg.model.type == 'MultiTaskModel':  # one head per task: see test_multi_task.py
        return
    head = getattr(model, 'head', None)  # None: a contrastive DualEncoder (towers only)
    linears = [m for m in head.modules() if isinstance(m, nn.Linear)] if head else []
    if head is None:
        assert model.embed_dim > 0
    elif hasattr(model, 'necks'):  # a dense model: the head takes the fused pyramid
        width = model.fusion.out_channels if model.fusion is not None else \
            model.necks[model.spatial_modalities[0]].out_channels
        assert model.head.in_channels == width
    elif linears:
        assert linears[0].in_features == model.fusion.out_dim
    else:  # a head that takes the fusion's output as its logits (e.g. after LateFusion)
        assert model.fusion.out_dim == model.head.num_classes
    packed = [t for t in cfg.train_dataloader.dataset.pipeline
              if t['type'] == 'PackMultiModalInputs'][0]['inputs']
    assert set(packed) == set(model.encoders)


PROJECT_CONFIGS = sorted(glob.glob(osp.join(REPO_ROOT, 'projects', '*', 'configs', '*.py')))


@pytest.mark.parametrize('path', CONFIGS + PROJECT_CONFIGS,
                         ids=[osp.relpath(p, REPO_ROOT) for p in CONFIGS + PROJECT_CONFIGS])
def test_config_takes_a_training_step(path, mmshapes_root, monkeypatch):
    """Data pipeline, vocabularies, model and optimizer of every config work
    together: one step on two training samples changes the weights and gives a
    finite loss."""
    import torch
    from mmengine.dataset import pseudo_collate
    from mmengine.optim import build_optim_wrapper

    from mmfusion.registry import DATASETS

    require_config_extras(path, monkeypatch)
    project = osp.dirname(osp.dirname(path)) if path in PROJECT_CONFIGS else None
    if project:
        monkeypatch.syspath_prepend(project)
    register_all_modules()
    cfg = Config.fromfile(path)
    if cfg.model.type == 'KnowledgeDistiller':  # built with a fresh teacher in test_distiller.py
        pytest.skip('a distillation config needs a trained teacher checkpoint')
    point_datasets_at(cfg, mmshapes_root)
    resolve_vocabularies(cfg)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    batch = pseudo_collate([dataset[i] for i in range(2)])
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    model.train()
    losses = model.train_step(batch, optim_wrapper)
    assert losses and all(torch.isfinite(v).all() for v in losses.values()), losses
    changed = [n for n, p in model.named_parameters() if n in before
               and not torch.equal(p.detach(), before[n])]
    assert changed, 'the training step changed no weight'
