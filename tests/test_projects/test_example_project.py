"""The example plugin project: registered from outside, trained through the tools."""
import os
import os.path as osp
import subprocess
import sys
import zipfile

import torch
from conftest import PYTHON, REPO_ROOT, run_tool, small_cfg

PROJECT = osp.join(REPO_ROOT, 'projects', 'example_project')


def test_project_config_inherits_mmfusion_config():
    sys.path.insert(0, PROJECT)
    try:
        from mmengine.config import Config

        import mmfusion  # noqa: F401

        cfg = Config.fromfile(osp.join(PROJECT, 'configs', 'mmshapes_vqa_product.py'))
    finally:
        sys.path.remove(PROJECT)
    assert cfg.model.fusion == dict(type='ProductFusion', out_dim=512, dropout=0.1)
    # everything else comes from mmfusion::vqa/mmshapes_vqa.py
    assert cfg.model.head.type == 'VQAHead'
    assert cfg.train_dataloader.dataset.type == 'MMShapesVQADataset'


def test_project_trains_with_its_own_fusion(mmshapes_root, tmp_path):
    sys.path.insert(0, PROJECT)
    try:
        cfg = small_cfg(osp.join(PROJECT, 'configs', 'mmshapes_vqa_product.py'), mmshapes_root,
                        str(tmp_path), max_epochs=1)
    finally:
        sys.path.remove(PROJECT)
    env = dict(PYTHONPATH=PROJECT + os.pathsep + os.environ.get('PYTHONPATH', ''))
    run_tool([PYTHON, 'tools/train.py', cfg, '--work-dir', str(tmp_path)], env=env)
    state = torch.load(str(tmp_path / 'epoch_1.pth'))['state_dict']
    # ProductFusion's own parameters were trained and saved
    assert {'fusion.proj.image.0.weight', 'fusion.proj.text.0.weight'} <= set(state)


def test_wheel_ships_configs_for_mmfusion_prefix(tmp_path):
    """`mmfusion::` configs resolve from an installed (non-editable) package."""
    subprocess.run([PYTHON, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation',
                    '-q', '-w', str(tmp_path), REPO_ROOT], check=True, capture_output=True)
    wheel = next(p for p in os.listdir(tmp_path) if p.endswith('.whl'))
    names = zipfile.ZipFile(tmp_path / wheel).namelist()
    assert 'mmfusion/.mim/configs/vqa/mmshapes_vqa.py' in names
    assert 'mmfusion/.mim/configs/_base_/default_runtime.py' in names
