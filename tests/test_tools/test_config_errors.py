"""Config mistakes through the command-line tools: one ``mmfusion: error:`` line
naming the config key and the fix, exit status 1, no traceback. They fail
while building, before any training step, so each run takes seconds."""
import os
import subprocess

import pytest
from conftest import PYTHON, REPO_ROOT, small_cfg

CONFIG = 'configs/classification/mmshapes_itm.py'


@pytest.fixture(scope='module')
def itm_cfg(mmshapes_root, tmp_path_factory) -> str:
    """The image-text matching config on the small MMShapes copy."""
    return small_cfg(CONFIG, mmshapes_root, str(tmp_path_factory.mktemp('itm_cfg')), max_epochs=1)


def run_failing_tool(args, env: dict = None) -> subprocess.CompletedProcess:
    """Run a tool on the CPU that is expected to fail; returns its result."""
    full_env = dict(os.environ, PYTHONUNBUFFERED='1', CUDA_VISIBLE_DEVICES='')
    full_env.pop('MMFUSION_TRACEBACK', None)
    full_env.update(env or {})
    proc = subprocess.run(args, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
                          env=full_env)
    assert proc.returncode != 0, f'{" ".join(args)} succeeded:\n{proc.stdout[-3000:]}'
    return proc


def error_line(proc: subprocess.CompletedProcess) -> str:
    """The tool's one-line error message (checks there is exactly one)."""
    lines = [line for line in proc.stderr.splitlines() if line.startswith('mmfusion: error: ')]
    assert len(lines) == 1, proc.stderr[-3000:]
    return lines[0]


def train(cfg: str, work_dir, *options: str, env: dict = None) -> subprocess.CompletedProcess:
    return run_failing_tool([PYTHON, 'tools/train.py', cfg, '--work-dir', str(work_dir),
                             '--cfg-options', *options], env=env)


def test_misspelled_type_names_key_and_suggestion(itm_cfg, tmp_path):
    proc = train(itm_cfg, tmp_path, 'model.fusion.type=GMUFuson')
    assert proc.returncode == 1
    line = error_line(proc)
    assert "model.fusion.type = 'GMUFuson'" in line
    assert 'mmfusion::model registry' in line
    assert "Did you mean 'GMUFusion'?" in line
    assert 'Traceback' not in proc.stderr


def test_misspelled_type_in_a_pipeline_built_by_train(itm_cfg, tmp_path):
    # the data loaders are built inside runner.train(), after the model
    proc = train(itm_cfg, tmp_path, 'train_dataloader.dataset.pipeline.0.type=LoadImageFromFil')
    assert proc.returncode == 1
    line = error_line(proc)
    assert "train_dataloader.dataset.pipeline[0].type = 'LoadImageFromFil'" in line
    assert "Did you mean 'LoadImageFromFile'?" in line
    assert 'Traceback' not in proc.stderr


def test_misspelled_argument_names_key_and_suggestion(itm_cfg, tmp_path):
    proc = train(itm_cfg, tmp_path, 'model.fusion.out_dimm=256')
    assert proc.returncode == 1
    line = error_line(proc)
    assert "model.fusion.out_dimm: MLBFusion takes no argument 'out_dimm'" in line
    assert "Did you mean 'out_dim'?" in line
    assert 'Traceback' not in proc.stderr


def test_modality_mismatch_names_both_keys_and_fix(itm_cfg, tmp_path):
    # the pipeline still packs the caption, but the model has no text encoder
    proc = train(itm_cfg, tmp_path, 'model.encoders.text=None')
    assert proc.returncode == 1
    line = error_line(proc)
    assert 'train_dataloader.dataset.pipeline[1].inputs' in line
    assert 'model.encoders' in line
    assert "'text' is packed but no encoder takes it: add model.encoders.text=" in line
    assert 'Traceback' not in proc.stderr
    # nothing was trained: the check runs before the Runner is built
    assert not list(tmp_path.glob('*.pth'))


def test_traceback_on_request(itm_cfg, tmp_path):
    proc = train(itm_cfg, tmp_path, 'model.fusion.type=GMUFuson',
                 env={'MMFUSION_TRACEBACK': '1'})
    assert 'Traceback' in proc.stderr
    # the ConfigError, chained to MMEngine's KeyError
    assert 'mmfusion.errors.ConfigError: model.fusion.type' in proc.stderr
    assert 'KeyError' in proc.stderr


def empty_checkpoint(tmp_path) -> str:
    """A real checkpoint file that holds no weights (and so no vocabularies)."""
    import torch

    path = str(tmp_path / 'empty.pth')
    torch.save(dict(state_dict={}, meta={}), path)
    return path


def test_test_tool_reports_config_error(itm_cfg, tmp_path):
    # the model is built before the weights are loaded: a checkpoint without them will do
    ckpt = empty_checkpoint(tmp_path)
    proc = run_failing_tool([PYTHON, 'tools/test.py', itm_cfg, ckpt, '--work-dir',
                             str(tmp_path), '--cfg-options', 'model.head.type=ClsHaed'])
    assert proc.returncode == 1
    line = error_line(proc)
    assert "model.head.type = 'ClsHaed'" in line and "Did you mean 'ClsHead'?" in line
    assert 'Traceback' not in proc.stderr


def test_infer_tool_reports_config_error(mmshapes_root, tmp_path):
    cfg = small_cfg(CONFIG, mmshapes_root, str(tmp_path), max_epochs=1,
                    extra={'model.encoders.image.type': 'TimEncoder'})
    # the model is built before the weights or the image are read
    proc = run_failing_tool([PYTHON, 'tools/infer.py', cfg, empty_checkpoint(tmp_path),
                             '--image', 'scene.png',
                             '--text', 'two red circles'])
    assert proc.returncode == 1
    line = error_line(proc)
    assert "model.encoders.image.type = 'TimEncoder'" in line
    assert "Did you mean 'TimmEncoder'?" in line
    assert 'Traceback' not in proc.stderr
