"""MultiTaskModel and the task loss weightings."""
import math

import pytest
import torch
from mmengine.optim import OptimWrapper

from mmfusion.errors import ConfigError
from mmfusion.models import DWATaskWeighting, MultiTaskModel, UncertaintyTaskWeighting
from mmfusion.structures import MultiModalDataSample
from mmfusion.utils import register_all_modules

register_all_modules()


def vec(in_dim, out_dim=8):
    return dict(type='MLPEncoder', in_dim=in_dim, out_dim=out_dim)


def small_model(weighting=None, **overrides):
    cfg = dict(
        encoders=dict(a=vec(4), b=vec(3)),
        tasks=dict(
            both=dict(modalities=['a', 'b'],
                      fusion=dict(type='ConcatFusion', out_dim=8),
                      head=dict(type='ClsHead', num_classes=3)),
            only_a=dict(modalities=['a'], head=dict(type='ClsHead', num_classes=2))),
        task_weighting=weighting)
    cfg.update(overrides)
    return MultiTaskModel(**cfg)


def samples(task, labels):
    out = []
    for y in labels:
        s = MultiModalDataSample(metainfo=dict(task=task))
        s.gt_label = torch.tensor([y])
        out.append(s)
    return out


def test_each_task_uses_its_modalities_and_head():
    torch.manual_seed(0)
    model = small_model()
    # the shared encoder 'a' is one module for both tasks
    assert sum(1 for n, _ in model.named_modules() if n.startswith('encoders.a')) >= 1
    both = model({'a': torch.randn(5, 4), 'b': torch.randn(5, 3)}, samples('both', [0] * 5))
    only = model({'a': torch.randn(5, 4)}, samples('only_a', [0] * 5))
    assert both.shape == (5, 3) and only.shape == (5, 2)
    losses = model({'a': torch.randn(5, 4)}, samples('only_a', [1, 0, 1, 0, 1]), mode='loss')
    assert set(losses) == {'only_a/loss', 'only_a/raw', 'only_a/weight'}
    # fixed weighting, weight 1: the weighted loss is the raw loss
    assert torch.allclose(losses['only_a/loss'], losses['only_a/raw'])
    preds = model({'a': torch.randn(2, 4)}, samples('only_a', [0, 1]), mode='predict')
    assert all(p.pred_score.shape == (2, ) for p in preds)


def test_task_from_argument_and_bad_batches():
    model = small_model()
    out = model({'a': torch.randn(2, 4)}, None, task='only_a')
    assert out.shape == (2, 2)
    with pytest.raises(ConfigError, match='no "task" metainfo'):
        model({'a': torch.randn(2, 4)}, [MultiModalDataSample()])
    with pytest.raises(ConfigError, match='TaskBatchSampler'):
        model({'a': torch.randn(2, 4)}, samples('only_a', [0]) + samples('both', [0]))
    with pytest.raises(ConfigError, match="model.tasks has"):
        model({'a': torch.randn(1, 4)}, samples('vqa', [0]))
    with pytest.raises(ConfigError, match=r"model.tasks.only_a.modalities"):
        model({'a': torch.randn(1, 4), 'b': torch.randn(1, 3)}, samples('only_a', [0]))


@pytest.mark.parametrize('tasks, match', [
    (dict(t=dict(modalities=['a', 'c'], fusion=dict(type='ConcatFusion', out_dim=8),
                 head=dict(type='ClsHead', num_classes=2))),
     r"model.tasks.t.modalities names \['c'\]"),
    (dict(t=dict(modalities=['a', 'b'], head=dict(type='ClsHead', num_classes=2))),
     'model.tasks.t uses 2 modalities'),
    (dict(t=dict(modalities=['a'], head=dict(type='ClsHead', num_classes=2, in_dim=5))),
     r'model.tasks.t.head.in_dim=5'),
    (dict(t=dict(modalities=['a'], head=dict(type='ClsHead', num_classes=2), loss_w=1)),
     r"model.tasks.t: unknown keys \['loss_w'\]"),
    (dict(t=dict(modalities=['a', 'b'], fusion='shared',
                 head=dict(type='ClsHead', num_classes=2))),
     "model.fusion is not set"),
])
def test_heads_that_do_not_fit_are_config_errors(tasks, match):
    with pytest.raises(ConfigError, match=match):
        MultiTaskModel(encoders=dict(a=vec(4), b=vec(3)), tasks=tasks)


def test_shared_fusion_is_one_module():
    model = MultiTaskModel(
        encoders=dict(a=vec(4), b=vec(3)),
        fusion=dict(type='ConcatFusion', out_dim=6),
        tasks=dict(x=dict(modalities=['a', 'b'], fusion='shared',
                          head=dict(type='ClsHead', num_classes=2)),
                   y=dict(modalities=['b', 'a'], fusion='shared',
                          head=dict(type='ClsHead', num_classes=4))))
    assert 'fusion' not in model.tasks['x'] and model.fusion.out_dim == 6
    inputs = {'a': torch.randn(3, 4), 'b': torch.randn(3, 3)}
    assert model(inputs, task='x').shape == (3, 2)
    assert model(inputs, task='y').shape == (3, 4)


def test_uncertainty_term_and_gradient_follow_kendall():
    w = UncertaintyTaskWeighting(tasks=['a', 'b'], init_log_var=0.5)
    loss = torch.tensor(2.0)
    term = w('b', loss)
    # 0.5 * exp(-s) * L + 0.5 * s with s = 0.5
    assert term.item() == pytest.approx(0.5 * math.exp(-0.5) * 2.0 + 0.25)
    term.backward()
    # d/ds = 0.5 * (1 - exp(-s) * L); only task b's s gets a gradient
    assert w.log_vars.grad[1].item() == pytest.approx(0.5 * (1 - math.exp(-0.5) * 2.0))
    assert w.log_vars.grad[0].item() == 0.0
    assert w.weight('b') == pytest.approx(0.5 * math.exp(-0.5))


def test_uncertainty_weights_are_learnt_in_training():
    """A task with labels that cannot be learnt (random) keeps a high loss and
    must end with a larger sigma (smaller weight) than a learnable one."""
    torch.manual_seed(0)
    model = small_model(weighting=dict(type='UncertaintyTaskWeighting'))
    optim = OptimWrapper(torch.optim.Adam(model.parameters(), lr=0.05))
    xa = torch.randn(64, 4)
    learnable = (xa[:, 0] > 0).long().tolist()
    noise_x = {'a': torch.randn(64, 4), 'b': torch.randn(64, 3)}
    noise_y = torch.randint(0, 3, (64, )).tolist()
    before = model.task_weighting.log_vars.detach().clone()
    for _ in range(60):
        model.train_step(dict(inputs={'a': xa}, data_samples=samples('only_a', learnable)),
                         optim)
        model.train_step(dict(inputs=noise_x, data_samples=samples('both', noise_y)), optim)
    s = dict(zip(model.task_weighting.tasks, model.task_weighting.log_vars.tolist()))
    assert not torch.allclose(model.task_weighting.log_vars.detach(), before)
    assert s['both'] > s['only_a'] + 0.5
    assert model.task_weighting.weight('only_a') > model.task_weighting.weight('both')


def test_dwa_weights_follow_the_loss_ratio():
    w = DWATaskWeighting(tasks=['x', 'y'], temperature=2.0, interval=2)
    w.train()
    # period 1: x=4, y=1; period 2: x=2 (halved), y=1 (flat)
    for task, value in [('x', 4.0), ('y', 1.0), ('x', 2.0), ('y', 1.0)]:
        out = w(task, torch.tensor(value))
    assert out.item() == pytest.approx(1.0)  # the first two periods weigh 1
    # r_x = 2/4, r_y = 1/1; w = 2 * softmax(r / T)
    ex, ey = math.exp(0.5 / 2), math.exp(1.0 / 2)
    assert w.weight('x') == pytest.approx(2 * ex / (ex + ey), rel=1e-5)
    assert w.weight('y') == pytest.approx(2 * ey / (ex + ey), rel=1e-5)
    assert w.weight('y') > w.weight('x')  # the task that learns slower weighs more
    # applied on the next call
    assert w('y', torch.tensor(3.0)).item() == pytest.approx(3.0 * w.weight('y'), rel=1e-5)


def test_fixed_weights_and_their_errors():
    model = small_model(weighting=dict(type='FixedTaskWeighting', weights=dict(only_a=0.25)))
    losses = model({'a': torch.randn(4, 4)}, samples('only_a', [0, 1, 0, 1]), mode='loss')
    assert losses['only_a/loss'].item() == pytest.approx(0.25 * losses['only_a/raw'].item())
    with pytest.raises(ConfigError, match=r"weights names tasks \['nope'\]"):
        small_model(weighting=dict(type='FixedTaskWeighting', weights=dict(nope=1.0)))


def test_a_missing_modality_never_reaches_its_encoder():
    torch.manual_seed(0)
    model = small_model().eval()
    seen = []
    model.encoders['b'].register_forward_hook(lambda m, args, out: seen.append(args[0].shape[0]))
    a, b = torch.randn(4, 4), torch.randn(4, 3)
    data = samples('both', [0, 1, 2, 0])
    data[0].set_metainfo(dict(modality_mask=dict(a=True, b=False)))
    with torch.no_grad():
        masked = model({'a': a, 'b': b}, data)
        full = model({'a': a, 'b': b}, samples('both', [0, 1, 2, 0]))
        dropped = model({'a': a, 'b': None}, samples('both', [0] * 4))
    assert seen == [3, 4]  # the masked sample's b never ran; no b ran for the None batch
    assert torch.allclose(masked[1:], full[1:], atol=1e-6)
    assert not torch.allclose(masked[0], full[0])
    assert dropped.shape == (4, 3)
    # a mask for a modality the model does not encode is refused by name
    bad = samples('both', [0])
    bad[0].set_metainfo(dict(modality_mask=dict(c=False)))
    with pytest.raises(ConfigError, match="modality_mask\\['c'\\]=False"):
        model({'a': a[:1], 'b': b[:1]}, bad)
