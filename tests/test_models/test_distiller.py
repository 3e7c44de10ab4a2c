"""KnowledgeDistiller, KDLoss and FitNetsLoss."""
import math

import pytest
import torch
import torch.nn.functional as F
from mmengine.optim import OptimWrapper
from mmengine.runner.checkpoint import get_state_dict

from mmfusion.errors import CheckpointMismatchError, ConfigError
from mmfusion.models import FitNetsLoss, KDLoss, KnowledgeDistiller
from mmfusion.registry import MODELS
from mmfusion.structures import MultiModalDataSample
from mmfusion.utils import register_all_modules

register_all_modules()


def classifier(dims, width, num_classes=3):
    encoders = {m: dict(type='MLPEncoder', in_dim=d, out_dim=width) for m, d in dims.items()}
    return dict(type='MultiModalClassifier', encoders=encoders,
                fusion=dict(type='ConcatFusion', out_dim=width),
                head=dict(type='ClsHead', num_classes=num_classes))


TEACHER = classifier(dict(image=6, audio=5), width=16)


@pytest.fixture
def teacher_ckpt(tmp_path):
    torch.manual_seed(1)
    teacher = MODELS.build(TEACHER)
    path = str(tmp_path / 'teacher.pth')
    torch.save(dict(state_dict=teacher.state_dict()), path)
    return path, {k: v.clone() for k, v in teacher.state_dict().items()}


def batch(n=8, modalities=('image', 'audio')):
    dims = dict(image=6, audio=5)
    samples = []
    for i in range(n):
        s = MultiModalDataSample()
        s.gt_label = torch.tensor([i % 3])
        samples.append(s)
    return dict(inputs={m: torch.randn(n, dims[m]) for m in modalities}, data_samples=samples)


def distiller(ckpt, student=None, **kwargs):
    kwargs.setdefault('logit_loss', dict(type='KDLoss', temperature=2.0))
    kwargs.setdefault('feature_losses', [dict(student='fusion', teacher='fusion',
                                              loss=dict(type='FitNetsLoss'))])
    return KnowledgeDistiller(student=student or classifier(dict(image=6, audio=5), width=4),
                              teacher=dict(model=TEACHER, checkpoint=ckpt), **kwargs)


def test_kd_loss_matches_hinton():
    s, t = torch.randn(4, 5), torch.randn(4, 5)
    temp = 3.0
    p = F.softmax(t / temp, 1)
    expected = temp ** 2 * (p * (p.log() - F.log_softmax(s / temp, 1))).sum(1).mean()
    assert KDLoss(temperature=temp)(s, t).item() == pytest.approx(expected.item(), rel=1e-5)
    assert KDLoss()(t, t).item() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ConfigError, match='same classes'):
        KDLoss()(torch.randn(2, 3), torch.randn(2, 4))
    # sigmoid form: the binary cross-entropy to the teacher's soft labels
    s2 = torch.zeros(2, 3)
    assert KDLoss(temperature=1.0, use_sigmoid=True)(s2, torch.zeros(2, 3)).item() == \
        pytest.approx(math.log(2), rel=1e-5)


def test_fitnets_projection_is_learnt_and_maps_work():
    loss = FitNetsLoss(student_dim=4, teacher_dim=7)
    value = loss(torch.randn(3, 4), torch.randn(3, 7))
    value.backward()
    assert loss.projection.weight.grad is not None and loss.projection.weight.grad.abs().sum() > 0
    maps = FitNetsLoss(student_dim=2, teacher_dim=5, spatial=True)
    assert maps(torch.randn(1, 2, 4, 4), torch.randn(1, 5, 8, 8)).dim() == 0
    with pytest.raises(ConfigError, match='expects student features of 4'):
        loss(torch.randn(3, 5), torch.randn(3, 7))


def test_teacher_is_frozen_unchanged_and_absent_from_checkpoints(teacher_ckpt):
    path, saved = teacher_ckpt
    torch.manual_seed(0)
    model = distiller(path)
    teacher = model.teacher
    # loaded from the checkpoint, frozen, in eval mode and not a submodule
    assert all(torch.equal(teacher.state_dict()[k], v) for k, v in saved.items())
    assert not any(p.requires_grad for p in teacher.parameters())
    teacher_params = {id(p) for p in teacher.parameters()}
    assert not teacher_params & {id(p) for p in model.parameters()}
    model.train()
    assert not teacher.training
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.5))
    student_before = {k: v.clone() for k, v in model.student.state_dict().items()}
    for _ in range(3):
        log = model.train_step(batch(), optim)
    assert {'loss', 'loss_kd', 'loss_fitnet_0'} <= set(log)
    assert all(torch.equal(teacher.state_dict()[k], v) for k, v in saved.items())
    assert any(not torch.equal(model.student.state_dict()[k], v)
               for k, v in student_before.items())
    # what MMEngine's runner saves: get_state_dict(model) and model.state_dict()
    for state in (get_state_dict(model), model.state_dict()):
        assert not any(k.startswith('teacher') or '_teacher' in k for k in state)
        assert any(k.startswith('student.') for k in state)
    # and a distiller with another teacher file loads that state back
    again = distiller(path)
    again.load_state_dict(model.state_dict())


def test_cross_modal_student_sees_only_its_modality(teacher_ckpt):
    path, _ = teacher_ckpt
    model = distiller(path, student=classifier(dict(image=6), width=4),
                      feature_losses=[dict(student='encoders.image', teacher='encoders.image',
                                           loss=dict(type='FitNetsLoss'))])
    seen = {}

    def record(module, args):
        seen.setdefault('keys', sorted(args[0]))  # returns None: the inputs stay as they are

    model.student.register_forward_pre_hook(record)
    losses = model(**batch(), mode='loss')
    assert seen['keys'] == ['image']
    assert losses['loss_kd'] > 0 and losses['loss_fitnet_0'] > 0
    # predict needs only the student's modality
    preds = model(**batch(modalities=('image', )), mode='predict')
    assert len(preds) == 8 and preds[0].pred_score.shape == (3, )
    # training batches must carry the teacher's modalities
    with pytest.raises(ConfigError, match=r"the teacher encodes \['audio'\]"):
        model(**batch(modalities=('image', )), mode='loss')


def test_teacher_checkpoint_that_does_not_fit(tmp_path):
    other = MODELS.build(classifier(dict(image=6, audio=5), width=9))
    path = str(tmp_path / 'other.pth')
    torch.save(dict(state_dict=other.state_dict()), path)
    with pytest.raises(CheckpointMismatchError, match=r'^model.teacher.checkpoint: checkpoint'):
        distiller(path)


@pytest.mark.parametrize('teacher, match', [
    (dict(model=TEACHER), 'model.teacher.checkpoint is required'),
    (dict(checkpoint='x.pth'), 'exactly one of config'),
    (dict(model=TEACHER, checkpoint='x.pth', ckpt='y'), r"unknown keys \['ckpt'\]"),
])
def test_bad_teacher_configs(teacher, match):
    with pytest.raises(ConfigError, match=match):
        KnowledgeDistiller(student=classifier(dict(image=6), width=4), teacher=teacher,
                           logit_loss=dict(type='KDLoss'))


def test_nothing_to_distil_and_unknown_module(teacher_ckpt):
    path, _ = teacher_ckpt
    with pytest.raises(ConfigError, match='nothing is distilled'):
        distiller(path, logit_loss=None, feature_losses=[])
    with pytest.raises(ConfigError, match="no submodule 'neck'"):
        distiller(path, feature_losses=[dict(student='neck', teacher='fusion',
                                             loss=dict(type='FitNetsLoss'))])


@pytest.mark.parametrize('config', ['mmshapes_av_kd.py', 'mmshapes_av_image_kd.py'])
def test_shipped_distillation_configs_take_a_step(config, mmshapes_root, tmp_path):
    """The configs/distillation/*_kd.py configs, with a fresh teacher checkpoint
    of their teacher config: student <= 1/4 of the teacher, one training step
    that leaves the teacher unchanged."""
    import os.path as osp

    from conftest import REPO_ROOT, point_datasets_at
    from mmengine.config import Config
    from mmengine.dataset import pseudo_collate
    from mmengine.optim import build_optim_wrapper

    from mmfusion.registry import DATASETS

    cfg = Config.fromfile(osp.join(REPO_ROOT, 'configs', 'distillation', config))
    point_datasets_at(cfg, mmshapes_root)
    teacher_cfg = Config.fromfile(osp.join(REPO_ROOT, cfg.model.teacher.config))
    torch.manual_seed(0)
    teacher = MODELS.build(teacher_cfg.model)
    ckpt = str(tmp_path / 'teacher.pth')
    torch.save(dict(state_dict=teacher.state_dict()), ckpt)
    cfg.model.teacher.config = osp.join(REPO_ROOT, cfg.model.teacher.config)
    cfg.model.teacher.checkpoint = ckpt
    model = MODELS.build(cfg.model)
    n_student = sum(p.numel() for p in model.student.parameters())
    n_teacher = sum(p.numel() for p in model.teacher.parameters())
    assert n_student <= n_teacher / 4
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    data = pseudo_collate([dataset[i] for i in range(2)])
    optim = build_optim_wrapper(model, cfg.optim_wrapper)
    before = {k: v.clone() for k, v in model.teacher.state_dict().items()}
    model.train()
    log = model.train_step(data, optim)
    assert torch.isfinite(log['loss']) and 'loss_kd' in log and 'loss_fitnet_0' in log
    assert all(torch.equal(model.teacher.state_dict()[k], v) for k, v in before.items())
