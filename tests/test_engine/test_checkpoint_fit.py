"""A checkpoint that does not fit the model is an error where the weights must be
the checkpoint's (test, inference, resume) and one summary table where a partial
match is normal (load_from, init_cfg Pretrained)."""
import os
import os.path as osp
import subprocess

import pytest
import torch
from conftest import PYTHON, REPO_ROOT, run_tool, small_cfg
from mmengine.config import Config
from mmengine.registry import DefaultScope
from torch import nn

from mmfusion.apis import MultiModalInferencer, init_model
from mmfusion.apis.model import resolve_vocabularies_for_checkpoint
from mmfusion.engine import load_checkpoint_file
from mmfusion.engine.checkpoint_fit import (
    FitPretrainedInit,
    compare_state_dict,
    load_checkpoint_strict,
    load_state_dict_leniently,
)
from mmfusion.errors import CheckpointMismatchError
from mmfusion.registry import WEIGHT_INITIALIZERS

VQA = 'configs/vqa/mmshapes_vqa.py'
AV = 'configs/classification/mmshapes_av.py'


# ---------------------------------------------------------------------------
# The comparison, on small modules


class Net(nn.Module):
    def __init__(self, hidden: int = 4, classes: int = 3, extra: bool = False) -> None:
        super().__init__()
        self.body = nn.Linear(2, hidden)
        self.head = nn.Linear(hidden, classes)
        if extra:
            self.extra = nn.Linear(1, 1)


def test_compare_finds_missing_unexpected_and_shape_mismatches():
    fit = compare_state_dict(Net(classes=5, extra=True), Net(classes=3).state_dict())
    assert fit.missing == ['extra.weight', 'extra.bias']
    assert fit.unexpected == []
    assert fit.mismatched == [('head.weight', (3, 4), (5, 4)), ('head.bias', (3,), (5,))]
    assert fit.loaded == ['body.weight', 'body.bias'] and not fit.fits

    fit = compare_state_dict(Net(), Net(extra=True).state_dict())
    assert fit.unexpected == ['extra.weight', 'extra.bias'] and not fit.missing
    assert compare_state_dict(Net(), Net().state_dict()).fits


def test_strict_load_refuses_a_misfit_and_changes_nothing(tmp_path):
    path = str(tmp_path / 'other.pth')
    torch.save(dict(state_dict=Net(classes=5).state_dict(), meta=dict(
        config_file='configs/other.py')), path)
    model = Net()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointMismatchError) as info:
        load_checkpoint_strict(model, path, config='configs/mine.py')
    message = str(info.value)
    assert f'checkpoint {path} does not fit the model of configs/mine.py' in message
    assert 'It was trained with configs/other.py' in message
    assert 'head.weight: checkpoint (5, 4), model (3, 4)' in message
    assert '| different shape ' in message and '| 2 ' in message
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_strict_load_of_a_fitting_checkpoint_loads_every_tensor(tmp_path):
    source = Net()
    path = str(tmp_path / 'same.pth')
    # a DDP checkpoint: keys prefixed with 'module.', as MMEngine strips them
    torch.save(dict(state_dict={'module.' + k: v for k, v in source.state_dict().items()}),
               path)
    model = Net()
    load_checkpoint_strict(model, path)
    for key, value in source.state_dict().items():
        assert torch.equal(model.state_dict()[key], value)


def test_lenient_load_keeps_new_layers_and_counts(tmp_path):
    source, model = Net(classes=5, extra=True), Net(classes=3)
    head_before = model.head.weight.detach().clone()
    fit = load_state_dict_leniently(model, source.state_dict(), 'src.pth')
    assert torch.equal(model.body.weight, source.body.weight)
    assert torch.equal(model.head.weight, head_before)  # another shape: initialised
    table = fit.summary_table('src.pth')
    assert 'Weights from src.pth' in table
    assert '| loaded from the checkpoint ' in table and 'body.weight' in table
    assert 'extra.weight' in table and 'head.weight (shape (5, 4), model (3, 4))' in table


def test_pretrained_init_is_lenient_by_default_and_strict_on_request(tmp_path):
    path = str(tmp_path / 'pre.pth')
    source = Net(classes=5)
    torch.save(dict(state_dict={'backbone.' + k: v for k, v in source.state_dict().items()}),
               path)
    with DefaultScope.overwrite_default_scope('mmfusion'):
        init = WEIGHT_INITIALIZERS.build(dict(type='Pretrained', checkpoint=path,
                                              prefix='backbone'))
    assert isinstance(init, FitPretrainedInit)
    model = Net(classes=3)
    init(model)
    assert torch.equal(model.body.weight, source.body.weight)
    with pytest.raises(CheckpointMismatchError, match='head.bias: checkpoint'):
        FitPretrainedInit(path, prefix='backbone', strict=True)(Net(classes=3))


# ---------------------------------------------------------------------------
# Through the tools, with two real checkpoints of different models


@pytest.fixture(scope='module')
def trained(mmshapes_root, tmp_path_factory) -> dict:
    """One epoch of the VQA quick-start and of the audio-visual classifier."""
    out = {}
    for name, config in (('vqa', VQA), ('av', AV)):
        cfg_dir = str(tmp_path_factory.mktemp(f'{name}_cfg'))
        work_dir = str(tmp_path_factory.mktemp(name))
        cfg = small_cfg(config, mmshapes_root, cfg_dir, max_epochs=1)
        run_tool([PYTHON, 'tools/train.py', cfg, '--work-dir', work_dir])
        out[name] = dict(cfg=cfg, ckpt=osp.join(work_dir, 'epoch_1.pth'))
    return out


def run_failing(args) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, CUDA_VISIBLE_DEVICES=''))
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert 'Traceback' not in proc.stderr, proc.stderr[-3000:]
    return proc


def error_of(proc: subprocess.CompletedProcess) -> str:
    """The error message: the one ``mmfusion: error:`` line and the table under it."""
    errors = [line for line in proc.stderr.splitlines() if line.startswith('mmfusion: error:')]
    assert len(errors) == 1, proc.stderr[-3000:]
    return proc.stderr[proc.stderr.index('mmfusion: error:'):]


def test_checkpoints_record_their_config(trained):
    meta = load_checkpoint_file(trained['vqa']['ckpt'])['meta']
    assert meta['config_file'].endswith('small_mmshapes_vqa.py')
    assert 'cfg' in meta  # MMEngine's config text


def test_test_tool_refuses_a_checkpoint_of_another_model(trained, tmp_path):
    work_dir = str(tmp_path / 'test')
    proc = run_failing([PYTHON, 'tools/test.py', trained['av']['cfg'], trained['vqa']['ckpt'],
                        '--work-dir', work_dir])
    message = error_of(proc)
    assert f'checkpoint {trained["vqa"]["ckpt"]} does not fit the model of' in message
    assert 'small_mmshapes_av.py' in message.splitlines()[0]
    assert 'It was trained with' in message and 'small_mmshapes_vqa.py' in message
    assert '| missing from the checkpoint | 22 ' in message
    assert '| not in the model            | 4 ' in message
    assert 'head.classifier.1.weight: checkpoint (16, 512), model (3, 256)' in message
    assert 'size mismatch' not in proc.stdout + proc.stderr  # no MMEngine warning wall
    assert not osp.exists(osp.join(work_dir, 'metrics.json'))


def test_test_tool_other_direction_through_the_vocabulary_step(trained, tmp_path):
    # the AV checkpoint stores no VQA vocabulary: it is built from the training
    # data, and the misfit is still the table error
    work_dir = str(tmp_path / 'test')
    proc = run_failing([PYTHON, 'tools/test.py', trained['vqa']['cfg'], trained['av']['ckpt'],
                        '--work-dir', work_dir])
    message = error_of(proc)
    assert 'does not fit the model of' in message and 'small_mmshapes_av.py' in message
    assert '| not in the model            | 22 ' in message
    assert not osp.exists(osp.join(work_dir, 'metrics.json'))


def test_vocabulary_step_without_training_data_is_a_checkpoint_error(trained):
    cfg = Config.fromfile(trained['vqa']['cfg'])
    cfg.train_dataloader = None  # no training data here
    with pytest.raises(CheckpointMismatchError) as info:
        resolve_vocabularies_for_checkpoint(cfg, trained['av']['ckpt'], 'vqa.py')
    message = str(info.value)
    assert 'stores no vocabulary for model.data_preprocessor.text.tokenizer, model.head' \
        in message
    assert 'small_mmshapes_av.py' in message  # where the checkpoint came from


def test_test_tool_still_evaluates_a_fitting_checkpoint(trained, tmp_path):
    work_dir = str(tmp_path / 'test')
    run_tool([PYTHON, 'tools/test.py', trained['vqa']['cfg'], trained['vqa']['ckpt'],
              '--work-dir', work_dir])
    assert osp.exists(osp.join(work_dir, 'metrics.json'))


def test_inference_api_refuses_a_checkpoint_of_another_model(trained):
    with pytest.raises(CheckpointMismatchError, match=r'\| different shape +\| 4 '):
        init_model(trained['av']['cfg'], trained['vqa']['ckpt'])
    with pytest.raises(CheckpointMismatchError, match='does not fit the model of'):
        MultiModalInferencer(trained['av']['cfg'], trained['vqa']['ckpt'], device='cpu')
    model = init_model(trained['vqa']['cfg'], trained['vqa']['ckpt'])
    state = load_checkpoint_file(trained['vqa']['ckpt'])['state_dict']
    assert torch.equal(model.state_dict()['head.classifier.1.weight'],
                       state['head.classifier.1.weight'])


def test_resume_from_a_checkpoint_of_another_model_is_refused(trained, tmp_path):
    proc = run_failing([PYTHON, 'tools/train.py', trained['av']['cfg'], '--work-dir',
                        str(tmp_path / 'run'), '--resume', trained['vqa']['ckpt']])
    assert 'does not fit the model of' in error_of(proc)


def test_load_from_is_lenient_with_one_table_or_strict_on_request(trained, tmp_path):
    args = [PYTHON, 'tools/train.py', trained['av']['cfg'], '--work-dir', str(tmp_path / 'ft'),
            '--cfg-options', f'load_from={trained["vqa"]["ckpt"]}']
    proc = run_tool(args)
    log = proc.stdout + proc.stderr
    assert 'Weights from ' + trained['vqa']['ckpt'] in log
    assert '| loaded from the checkpoint                  | 81 ' in log
    assert '| newly initialised                           | 26 ' in log
    assert '| ignored (not in the model or another shape) | 8 ' in log
    assert 'size mismatch' not in log and 'missing keys in source state_dict' not in log

    proc = run_failing(args[:-1] + [args[-1], 'load_from_strict=True'])
    assert 'does not fit the model of' in error_of(proc)
