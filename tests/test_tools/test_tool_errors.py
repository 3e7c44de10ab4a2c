"""Every tool fails in one line: ``mmfusion: error: ...``, exit status 1, no traceback.

Each case runs the real tool as a subprocess. The inputs are broken so that
the tool stops before it reads any data or checkpoint, which keeps these
tests fast; the one training run (``--data-root``) uses the small MMShapes copy.
"""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
from conftest import REPO_ROOT

VQA = 'configs/vqa/mmshapes_vqa.py'
# environment variables a launcher reads, removed so that the tests behave the
# same inside a torchrun, SLURM or MPI job
LAUNCH_VARS = ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT',
               'SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_NODELIST', 'SLURM_LOCALID',
               'OMPI_COMM_WORLD_RANK', 'OMPI_COMM_WORLD_SIZE', 'OMPI_COMM_WORLD_LOCAL_RANK',
               'OMPI_COMM_WORLD_LOCAL_SIZE', 'PMI_RANK', 'PMI_SIZE', 'MPI_LOCALRANKID',
               'MMFUSION_TRACEBACK')


def run(args, env=None, cwd=REPO_ROOT, timeout=300) -> subprocess.CompletedProcess:
    """Run a tool on the CPU without launcher variables; return the process."""
    full_env = {k: v for k, v in os.environ.items() if k not in LAUNCH_VARS}
    full_env.update(CUDA_VISIBLE_DEVICES='', PYTHONUNBUFFERED='1', **(env or {}))
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=full_env)


def assert_one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> str:
    """The process exited 1 with exactly one ``mmfusion: error:`` line on
    stderr, holding every fragment, and no traceback; returns that line."""
    output = (f'exit {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\n'
              f'stderr:\n{proc.stderr[-3000:]}')
    assert proc.returncode == 1, output
    assert 'Traceback' not in proc.stderr and 'Traceback' not in proc.stdout, output
    errors = [line for line in proc.stderr.splitlines() if line.startswith('mmfusion: error:')]
    assert len(errors) == 1, output
    assert proc.stderr.strip().splitlines()[-1] == errors[0], output
    for fragment in fragments:
        assert fragment in errors[0], output
    return errors[0]


@pytest.fixture(scope='module')
def fake_checkpoint(tmp_path_factory) -> str:
    """A file where a checkpoint is expected; the tools must fail before reading it."""
    path = tmp_path_factory.mktemp('ckpt') / 'epoch_1.pth'
    path.write_bytes(b'not a checkpoint')
    return str(path)


# each tool's command line with CONFIG in place of the config file
TOOLS = {
    'train': ['tools/train.py', 'CONFIG'],
    'test': ['tools/test.py', 'CONFIG', 'CKPT'],
    'infer': ['tools/infer.py', 'CONFIG', 'CKPT', '--image', 'x.png', '--question', 'why?'],
    'browse_dataset': ['tools/misc/browse_dataset.py', 'CONFIG', '--not-show',
                       '--output-dir', 'OUT'],
    'print_config': ['tools/misc/print_config.py', 'CONFIG'],
    'get_flops': ['tools/analysis_tools/get_flops.py', 'CONFIG'],
    'benchmark': ['tools/analysis_tools/benchmark.py', 'CONFIG'],
}


def tool_args(tool: str, config: str, ckpt: str, out: str) -> list:
    return [{'CONFIG': config, 'CKPT': ckpt, 'OUT': out}.get(a, a) for a in TOOLS[tool]]


# ---------------------------------------------------------------------------
# The config file


@pytest.mark.parametrize('tool', sorted(TOOLS))
def test_missing_config_names_the_path(tool, fake_checkpoint, tmp_path):
    proc = run(tool_args(tool, 'configs/vqa/nope.py', fake_checkpoint, str(tmp_path)))
    assert_one_line_error(proc, 'config file not found: configs/vqa/nope.py')


def test_misspelt_config_suggests_the_closest_file(fake_checkpoint):
    proc = run(['tools/train.py', 'configs/vqa/mmshapes_vq.py'])
    assert_one_line_error(proc, 'config file not found: configs/vqa/mmshapes_vq.py',
                          "Did you mean 'configs/vqa/mmshapes_vqa.py'?")


def test_a_folder_is_not_a_config():
    proc = run(['tools/train.py', 'configs/vqa'])
    assert_one_line_error(proc, 'configs/vqa is a folder')


@pytest.mark.skipif(hasattr(os, 'geteuid') and os.geteuid() == 0,
                    reason='root reads any file; tests/test_utils/test_launch.py covers it')
def test_unreadable_config_names_the_path(tmp_path):
    config = tmp_path / 'locked.py'
    config.write_text("_base_ = ['%s']\n" % osp.join(REPO_ROOT, VQA))
    config.chmod(0)
    proc = run(['tools/train.py', str(config)])
    assert_one_line_error(proc, f'cannot read config file {config}')


@pytest.mark.parametrize('tool', ['train', 'test'])
def test_syntax_error_names_file_and_line(tool, tmp_path, fake_checkpoint):
    config = tmp_path / 'broken.py'
    config.write_text("_base_ = ['%s']\n\nmodel = dict(fusion=dict(out_dim=256)\n"
                      % osp.join(REPO_ROOT, VQA))
    proc = run(tool_args(tool, str(config), fake_checkpoint, str(tmp_path)))
    assert_one_line_error(proc, f'{config}, line 3: invalid Python syntax',
                          'model = dict(fusion=dict(out_dim=256)')


def test_syntax_error_in_a_base_file_names_the_base(tmp_path):
    base = tmp_path / 'base.py'
    base.write_text('x = 1\ny = dict(a=1,,)\n')
    config = tmp_path / 'child.py'
    config.write_text("_base_ = ['./base.py']\n")
    proc = run(['tools/misc/print_config.py', str(config)])
    assert_one_line_error(proc, f'{base}, line 2: invalid Python syntax')


def test_error_raised_by_config_code_names_file_and_line(tmp_path):
    config = tmp_path / 'typo.py'
    config.write_text("_base_ = ['%s']\nmodel = dict(fusion=dict(out_dim=hidden_size))\n"
                      % osp.join(REPO_ROOT, VQA))
    proc = run(['tools/train.py', str(config)])
    assert_one_line_error(proc, f'{config}, line 2: the config raised NameError',
                          "'hidden_size'")


def test_traceback_on_request():
    proc = run(['tools/train.py', 'configs/vqa/nope.py'], env={'MMFUSION_TRACEBACK': '1'})
    assert proc.returncode == 1
    assert 'Traceback' in proc.stderr
    assert 'ConfigError: config file not found: configs/vqa/nope.py' in proc.stderr


def test_usage_errors_stay_exit_2():
    proc = run(['tools/train.py'])
    assert proc.returncode == 2, proc.stderr
    assert 'the following arguments are required: config' in proc.stderr
    proc = run(['tools/train.py', VQA, '--launcher', 'foo'])
    assert proc.returncode == 2, proc.stderr
    assert "invalid choice: 'foo'" in proc.stderr


# ---------------------------------------------------------------------------
# Launchers without their environment


@pytest.mark.parametrize('launcher, fragments', [
    ('pytorch', ['--launcher pytorch needs the environment variables that torchrun sets',
                 'RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT are not set',
                 'tools/dist_train.sh']),
    ('slurm', ['--launcher slurm needs the environment variables that srun sets',
               'SLURM_PROCID, SLURM_NTASKS and SLURM_NODELIST are not set']),
    ('mpi', ['--launcher mpi needs the environment that mpirun sets',
             'RANK (OMPI_COMM_WORLD_RANK or PMI_RANK) and WORLD_SIZE '
             '(OMPI_COMM_WORLD_SIZE or PMI_SIZE) are not set']),
])
def test_launcher_without_its_environment(launcher, fragments, tmp_path):
    proc = run(['tools/train.py', VQA, '--launcher', launcher, '--work-dir', str(tmp_path)])
    assert_one_line_error(proc, *fragments)


def test_mpi_across_hosts_needs_master_addr(tmp_path, fake_checkpoint):
    # as plain `mpirun` on two hosts sets it: two ranks, one of them on this host
    env = dict(OMPI_COMM_WORLD_RANK='0', OMPI_COMM_WORLD_SIZE='2',
               OMPI_COMM_WORLD_LOCAL_RANK='0', OMPI_COMM_WORLD_LOCAL_SIZE='1')
    proc = run(['tools/test.py', VQA, fake_checkpoint, '--launcher', 'mpi',
                '--work-dir', str(tmp_path)], env=env)
    assert_one_line_error(proc, '--launcher mpi: MASTER_ADDR is not set',
                          'mpirun -x MASTER_ADDR=')


# ---------------------------------------------------------------------------
# tools/infer.py inputs


def test_infer_names_the_missing_option(fake_checkpoint):
    proc = run(['tools/infer.py', VQA, fake_checkpoint, '--image', 'scene.png'])
    assert_one_line_error(
        proc, f'this VQA model ({VQA}) takes image and text: give --question')


def test_infer_names_an_option_the_model_does_not_take(fake_checkpoint):
    proc = run(['tools/infer.py', VQA, fake_checkpoint, '--image', 'scene.png',
                '--question', 'how many?', '--audio', 'clip.wav'])
    assert_one_line_error(proc, 'takes image and text, not audio: drop --audio')


# ---------------------------------------------------------------------------
# Overrides that change nothing, and --data-root


def test_cfg_options_data_root_is_refused(tmp_path):
    proc = run(['tools/train.py', VQA, '--work-dir', str(tmp_path),
                '--cfg-options', 'data_root=/my/data'])
    assert_one_line_error(
        proc, '--cfg-options data_root=/my/data changes nothing',
        'train_dataloader.dataset.data_root, val_dataloader.dataset.data_root and '
        'test_dataloader.dataset.data_root', 'use --data-root /my/data')
    assert not os.listdir(tmp_path)  # refused before the work dir was written


@pytest.mark.parametrize('option, target', [
    ('dataset_type=MyDataset', 'train_dataloader.dataset.type=MyDataset'),
    ('text_vocab_size=256', 'model.encoders.text.vocab_size=256'),
])
def test_cfg_options_variables_are_refused(option, target, fake_checkpoint, tmp_path):
    proc = run(['tools/test.py', VQA, fake_checkpoint, '--work-dir', str(tmp_path),
                '--cfg-options', option])
    assert_one_line_error(proc, f'--cfg-options {option} changes nothing', target)


def test_cfg_options_new_top_level_key_warns():
    proc = run(['tools/misc/print_config.py', VQA, '--json',
                '--cfg-options', 'trian_cfg.max_epochs=1', 'train_cfg.max_epochs=3'])
    assert proc.returncode == 0, proc.stderr
    assert "mmfusion: warning: --cfg-options trian_cfg.max_epochs: the config has no " \
        "top-level key 'trian_cfg'" in proc.stderr
    assert "Did you mean 'train_cfg'?" in proc.stderr
    # the warning stays off stdout, which holds the config alone
    assert json.loads(proc.stdout)['train_cfg']['max_epochs'] == 3


def test_data_root_moves_every_dataset(mmshapes_root, tmp_path):
    """Training with --data-root reads the small copy: the dumped config
    points every loader there and an epoch has the small copy's length."""
    from mmfusion.registry import DATASETS
    from mmfusion.utils import register_all_modules

    register_all_modules()
    num_questions = len(DATASETS.build(dict(type='MMShapesVQADataset', data_root=mmshapes_root,
                                            split='train', pipeline=[])))
    work_dir = tmp_path / 'work'
    proc = run(['tools/train.py', VQA, '--data-root', mmshapes_root,
                '--work-dir', str(work_dir),
                '--cfg-options', 'train_cfg.max_epochs=1', 'train_dataloader.batch_size=16',
                'val_dataloader.batch_size=16'], timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    from mmengine.config import Config

    dumped = Config.fromfile(str(work_dir / 'mmshapes_vqa.py'))
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        assert dumped[loader].dataset.data_root == mmshapes_root
    assert dumped.data_root == mmshapes_root
    iters = -(-num_questions // 16)
    assert f'Epoch(train) [1][{iters}/{iters}]' in proc.stdout
