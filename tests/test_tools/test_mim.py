"""``mim search/train/test/run mmfusion ...`` (openmim) in a wheel install and an editable one.

Each test works in a throwaway virtual environment made with
``--system-site-packages``, so torch and the rest of the stack are reused and
not reinstalled, and on a copy of the source tree, so building and installing
never touch the checkout these tests run from. openmim finds a package's tools,
configs and model index under ``<package>/.mim``: setup.py copies them there
for a wheel and links them there for an editable install.
"""
import json
import os
import os.path as osp
import re
import shutil
import subprocess
import sys

import pytest
from conftest import REPO_ROOT

pytestmark = pytest.mark.slow

# Not part of a source tree copy: generated data, build output, caches, git.
COPY_IGNORE = shutil.ignore_patterns(
    '.git', 'data', 'work_dirs', 'build', 'dist', '*.egg-info', '.mim', '__pycache__',
    '.pytest_cache', '.ruff_cache', '.hypothesis', '.benchmarks', '.venv', '.whl', '.gl')


def run(args, cwd, env=None, timeout=900) -> str:
    """Run a command; fail with its output, else return stdout and stderr together."""
    # An inherited PYTHONPATH could put the checkout's mmfusion ahead of the installed one.
    full_env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    full_env.update(PYTHONUNBUFFERED='1', CUDA_VISIBLE_DEVICES='',
                    PIP_DISABLE_PIP_VERSION_CHECK='1', **(env or {}))
    proc = subprocess.run([str(a) for a in args], cwd=cwd, env=full_env, text=True,
                          capture_output=True, timeout=timeout)
    out = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise AssertionError(f'{" ".join(map(str, args))} failed ({proc.returncode}):\n'
                             f'{out[-6000:]}')
    return out


@pytest.fixture(scope='module')
def mim_env(tmp_path_factory):
    """A venv over the system packages with openmim, and a copy of the source tree."""
    root = tmp_path_factory.mktemp('mim')
    venv = root / 'venv'
    run([sys.executable, '-m', 'venv', '--system-site-packages', venv], cwd=root)
    py = venv / 'bin' / 'python'
    # openmim's declared dependency opendatalab pins setuptools 60 and old requests/rich,
    # and openmim never imports it: install openmim alone plus what it does import.
    # setuptools<81 still has pkg_resources, which openmim needs; >=77 is what torch asks.
    run([py, '-m', 'pip', 'install', '-q', '--no-deps', 'openmim'], cwd=root)
    run([py, '-m', 'pip', 'install', '-q', 'setuptools>=77,<81', 'model-index', 'tabulate',
         'pandas', 'click', 'colorama', 'rich', 'requests'], cwd=root)
    src = root / 'src'
    shutil.copytree(REPO_ROOT, src, ignore=COPY_IGNORE, symlinks=True)
    return dict(root=root, py=py, mim=venv / 'bin' / 'mim', src=src)


def package_dir(py, cwd) -> str:
    """The folder ``import mmfusion`` loads from, in the venv."""
    code = 'import mmfusion, os.path as p; print("PKG=" + p.dirname(mmfusion.__file__))'
    out = run([py, '-c', code], cwd=cwd)
    return re.search(r'^PKG=(.+)$', out, re.M).group(1)


def data_options(data_root: str) -> list:
    """--cfg-options that train the named config for one epoch on the small MMShapes copy."""
    opts = ['train_cfg.max_epochs=1']
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        opts += [f'{loader}.dataset.data_root={data_root}', f'{loader}.batch_size=16']
    return opts


def last_val_acc(train_log: str) -> float:
    found = re.findall(r'Epoch\(val\) \[1\]\[\d+/\d+\]\s+vqa/acc: ([0-9.]+)', train_log)
    assert found, train_log[-3000:]
    return float(found[-1])


def check_mim_commands(env, work, mim_cwd, mmshapes_root, expect_root, extra_env=None):
    """search, train (a config found by name), test and run, from the installed package."""
    mim, run_env = env['mim'], extra_env or {}

    out = run([mim, 'search', 'mmfusion'], cwd=mim_cwd, env=run_env)
    listed = set(re.findall(r'config id: (\S+)', out))
    assert {'mmshapes_vqa', 'mmshapes_av', 'mmshapes_rgbd_det', 'mmshapes_ref_seg',
            'fusion_benchmark_mlb'} <= listed, out[-2000:]
    assert re.search(r'mmshapes/vqa_accuracy\s+92.37', out), out[:2000]

    # By name: mim looks the config up in <package>/.mim/configs.
    work_dir = work / 'train'
    out = run([mim, 'train', 'mmfusion', 'mmshapes_vqa.py', '--work-dir', work_dir,
               '--cfg-options', *data_options(mmshapes_root)], cwd=mim_cwd, env=run_env)
    found = re.search(r'will use (\S+) instead', out)
    assert found, out[-3000:]
    assert osp.realpath(found.group(1)).startswith(str(expect_root)), found.group(1)
    assert found.group(1).endswith(osp.join('configs', 'vqa', 'mmshapes_vqa.py'))
    assert re.search(r'\S+\.mim/tools/train\.py', out), out[-3000:]
    ckpt = work_dir / 'epoch_1.pth'
    assert ckpt.is_file(), os.listdir(work_dir)
    val_acc = last_val_acc(out)

    test_dir = work / 'test'
    out = run([mim, 'test', 'mmfusion', 'mmshapes_vqa.py', '--checkpoint', ckpt,
               '--work-dir', test_dir, '--cfg-options', *data_options(mmshapes_root)],
              cwd=mim_cwd, env=run_env)
    assert re.search(r'\S+\.mim/tools/test\.py', out), out[-3000:]
    metrics = json.load(open(test_dir / 'metrics.json'))
    # the test split is the val split: the checkpoint must score what training saw
    assert metrics['vqa/acc'] == pytest.approx(val_acc, abs=1e-3)
    assert re.search(r'\|\s*vqa/acc\s*\|', out), out[-3000:]

    image = osp.join(mmshapes_root, 'images', 'val', sorted(
        os.listdir(osp.join(mmshapes_root, 'images', 'val')))[0])
    out = run([mim, 'run', 'mmfusion', 'infer', work_dir / 'mmshapes_vqa.py', ckpt,
               '--image', image, '--question', 'what color is the triangle?'],
              cwd=mim_cwd, env=run_env)
    assert re.search(r'\S+\.mim/tools/infer\.py', out), out[-3000:]
    assert 'Q: what color is the triangle?' in out
    return out


def test_mim_with_wheel_install(mim_env, mmshapes_root, tmp_path):
    py, src = mim_env['py'], mim_env['src']
    wheels = tmp_path / 'wheels'
    run([py, '-m', 'pip', 'wheel', '-q', '--no-deps', '-w', wheels, src], cwd=tmp_path)
    (wheel,) = wheels.glob('mmfusion-*.whl')
    run([py, '-m', 'pip', 'install', '-q', '--no-deps', '--force-reinstall', wheel],
        cwd=tmp_path)
    site = package_dir(py, tmp_path)
    # the venv's own copy, not the editable install of the checkout
    assert site.startswith(str(mim_env['root'] / 'venv')), site
    for name in ('configs/vqa/mmshapes_vqa.py', 'tools/train.py', 'model-index.yml'):
        path = osp.join(site, '.mim', name)
        assert osp.isfile(path) and not osp.islink(path), path

    out = check_mim_commands(mim_env, tmp_path, tmp_path, mmshapes_root, expect_root=site)
    print(out[-1500:])


def test_mim_with_editable_install(mim_env, mmshapes_root, tmp_path):
    py, src = mim_env['py'], mim_env['src']
    run([py, '-m', 'pip', 'install', '-q', '--no-deps', '--force-reinstall', '-e', src],
        cwd=tmp_path)
    pkg = package_dir(py, tmp_path)
    assert pkg == str(src / 'mmfusion'), pkg
    for name in ('configs', 'tools', 'model-index.yml'):
        link = src / 'mmfusion' / '.mim' / name
        assert link.is_symlink() and link.resolve() == (src / name).resolve(), link

    # openmim 0.3.9 takes a package's directory from pkg_resources' location, which for
    # a PEP 660 editable install is site-packages, where mmfusion is not. With the
    # checkout first on the path and its egg-info written, the location is the checkout.
    run([py, 'setup.py', '-q', 'egg_info'], cwd=src)
    out = check_mim_commands(mim_env, tmp_path, tmp_path, mmshapes_root,
                             expect_root=src / 'configs', extra_env={'PYTHONPATH': str(src)})
    print(out[-1500:])
