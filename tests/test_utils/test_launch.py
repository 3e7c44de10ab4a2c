"""The shared config loader: refused overrides, --data-root, config-file and launcher errors."""
import builtins
import os
import os.path as osp

import pytest
from conftest import REPO_ROOT
from mmengine.config import Config

import mmfusion  # noqa: F401
from mmfusion.errors import ConfigError, LauncherError
from mmfusion.utils import check_overrides, read_config, set_data_root
from mmfusion.utils.config_vars import substitution_paths
from mmfusion.utils.dist import _mpi_env_to_torch_env, init_distributed
from mmfusion.utils.launch import read_keys

VQA = osp.join(REPO_ROOT, 'configs/vqa/mmshapes_vqa.py')
LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


@pytest.fixture(scope='module')
def vqa_cfg() -> Config:
    return Config.fromfile(VQA)


def test_substitution_paths_are_exact(vqa_cfg):
    paths = substitution_paths(vqa_cfg, 'text_vocab_size', keep=read_keys())
    # 128 is also the text embedding size and an image channel count: those
    # keys hold the same number but were not written from the variable
    assert paths == [('model', 'data_preprocessor', 'text', 'tokenizer', 'max_vocab_size'),
                     ('model', 'encoders', 'text', 'vocab_size')]
    assert substitution_paths(vqa_cfg, 'data_root', keep=read_keys()) == [
        (loader, 'dataset', 'data_root') for loader in LOADERS]


@pytest.mark.parametrize('options', [
    {'load_from': 'x.pth', 'resume': True, 'work_dir': 'w', 'experiment_name': 'e',
     'randomness.seed': 1, 'default_scope': 'mmfusion', 'log_level': 'DEBUG',
     'model_wrapper_cfg': {'type': 'MMDistributedDataParallel'}, 'launcher': 'none',
     'auto_scale_lr.base_batch_size': 8, 'custom_hooks': [], 'env_cfg.cudnn_benchmark': True},
    {'model.fusion.out_dim': 256, 'train_dataloader.dataset.data_root': '/d',
     'optim_wrapper.optimizer.lr': 0.1, 'param_scheduler': [], 'default_hooks.logger': None,
     'val_evaluator.type': 'VQAAccuracy', 'test_cfg': {}, 'visualizer.name': 'v',
     'log_processor.window_size': 1, 'train_cfg.max_epochs': 2, 'val_cfg': {}},
])
def test_keys_something_reads_are_accepted(vqa_cfg, options, capsys):
    check_overrides(vqa_cfg, options)
    assert capsys.readouterr().err == ''


def test_a_variable_is_refused_with_the_keys_to_override(vqa_cfg):
    with pytest.raises(ConfigError) as info:
        check_overrides(vqa_cfg, {'data_root': '/my/data'})
    message = str(info.value)
    assert message.startswith('--cfg-options data_root=/my/data changes nothing')
    assert 'use --data-root /my/data' in message
    assert '--cfg-options train_dataloader.dataset.data_root=/my/data ' \
        'val_dataloader.dataset.data_root=/my/data test_dataloader.dataset.data_root=/my/data' \
        in message


def test_a_new_key_warns(vqa_cfg, capsys):
    check_overrides(vqa_cfg, {'optim_wraper.optimizer.lr': 0.1})
    err = capsys.readouterr().err
    assert "no top-level key 'optim_wraper'" in err and "Did you mean 'optim_wrapper'?" in err


def test_a_tool_can_declare_the_keys_it_reads(vqa_cfg):
    check_overrides(vqa_cfg, {'train_pipeline': []}, extra_read_keys=['train_pipeline'])
    with pytest.raises(ConfigError, match='train_dataloader.dataset.pipeline'):
        check_overrides(vqa_cfg, {'train_pipeline': []})


def wrapped_cfg(tmp_path) -> Config:
    """A config whose root reaches a wrapped dataset and a vocabulary source."""
    path = tmp_path / 'wrapped.py'
    path.write_text(
        "data_root = 'data/shapes'\n"
        "ds = dict(type='MMShapesVQADataset', data_root=data_root, split='train',\n"
        "          ann_file=data_root + '/ann.json')\n"
        "model = dict(head=dict(type='VQAHead', answer_vocab=dict(dataset=ds)))\n"
        "train_dataloader = dict(dataset=dict(type='RepeatDataset', times=2, dataset=ds))\n"
        "val_dataloader = dict(dataset=dict(ds, split='val'))\n"
        "test_dataloader = dict(dataset=dict(type='X', data_root='elsewhere'))\n")
    return Config.fromfile(str(path))


def test_set_data_root_moves_every_dataset_using_it(tmp_path, capsys):
    cfg = wrapped_cfg(tmp_path)
    replaced = set_data_root(cfg, '/new')
    assert cfg.train_dataloader.dataset.dataset.data_root == '/new'
    assert cfg.val_dataloader.dataset.data_root == '/new'
    assert cfg.model.head.answer_vocab.dataset.data_root == '/new'
    assert cfg.model.head.answer_vocab.dataset.ann_file == '/new/ann.json'
    assert cfg.data_root == '/new'
    assert 'train_dataloader.dataset.dataset.data_root' in replaced
    # a dataset with another root is left alone, and said so
    assert cfg.test_dataloader.dataset.data_root == 'elsewhere'
    assert 'left test_dataloader.dataset.data_root' in capsys.readouterr().err


def test_set_data_root_without_the_variable(tmp_path):
    cfg = Config(dict(train_dataloader=dict(dataset=dict(data_root='a')),
                      val_dataloader=dict(dataset=dict(data_root='a'))))
    set_data_root(cfg, '/b')
    assert cfg.train_dataloader.dataset.data_root == cfg.val_dataloader.dataset.data_root == '/b'
    cfg = Config(dict(train_dataloader=dict(dataset=dict(data_root='a')),
                      val_dataloader=dict(dataset=dict(data_root='c'))))
    with pytest.raises(ConfigError, match='datasets use different roots'):
        set_data_root(cfg, '/b')
    with pytest.raises(ConfigError, match='no dataset'):
        set_data_root(Config(dict(model=dict())), '/b')


def test_unreadable_config(tmp_path, monkeypatch):
    path = tmp_path / 'locked.py'
    path.write_text('x = 1\n')
    real_open = builtins.open

    def locked(file, *args, **kwargs):
        if str(file) == str(path):
            raise PermissionError(13, 'Permission denied', str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, 'open', locked)
    with pytest.raises(ConfigError, match=f'cannot read config file {path}: Permission denied'):
        read_config(str(path))


def test_mpi_environment_on_one_host(monkeypatch):
    for key in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT'):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv('OMPI_COMM_WORLD_RANK', '1')
    monkeypatch.setenv('OMPI_COMM_WORLD_SIZE', '2')
    monkeypatch.setenv('OMPI_COMM_WORLD_LOCAL_RANK', '1')
    monkeypatch.setenv('OMPI_COMM_WORLD_LOCAL_SIZE', '2')
    _mpi_env_to_torch_env()
    assert (os.environ['RANK'], os.environ['WORLD_SIZE'], os.environ['LOCAL_RANK']) == \
        ('1', '2', '1')
    # every rank on this host: rank 0 is here
    assert os.environ['MASTER_ADDR'] == '127.0.0.1'
    assert os.environ['MASTER_PORT'] == '29500'


def test_unknown_launcher():
    with pytest.raises(LauncherError, match="unknown launcher 'foo'; expected one of none, "
                       'pytorch, slurm, mpi'):
        init_distributed('foo')
