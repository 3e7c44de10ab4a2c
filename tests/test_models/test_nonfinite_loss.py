"""A NaN/Inf loss never reaches the optimizer: stop (default) or skip the step."""
import pytest
import torch
from mmengine.logging import MessageHub
from mmengine.optim import OptimWrapper

from mmfusion.errors import ConfigError, NonFiniteLossError
from mmfusion.registry import MODELS
from mmfusion.structures import MultiModalDataSample
from mmfusion.utils import register_all_modules

register_all_modules()


def build(**policy):
    torch.manual_seed(0)
    model = MODELS.build(dict(
        type='MultiModalClassifier',
        encoders=dict(a=dict(type='MLPEncoder', in_dim=4, hidden_dims=(8,), out_dim=8),
                      b=dict(type='MLPEncoder', in_dim=3, hidden_dims=(8,), out_dim=8)),
        fusion=dict(type='ConcatFusion', out_dim=8),
        head=dict(type='ClsHead', num_classes=2), **policy))
    wrapper = OptimWrapper(torch.optim.AdamW(model.parameters(), lr=1e-2))
    return model, wrapper


def batch(poison: bool = False) -> dict:
    a = torch.randn(4, 4)
    if poison:
        a[1, 2] = float('nan')
    samples = [MultiModalDataSample() for _ in range(4)]
    for i, sample in enumerate(samples):
        sample.gt_label = i % 2
    return dict(inputs=dict(a=list(a), b=list(torch.randn(4, 3))), data_samples=samples)


def weights(model) -> dict:
    return {k: v.clone() for k, v in model.state_dict().items() if v.is_floating_point()}


def unchanged(before: dict, model) -> bool:
    return all(torch.equal(before[k], v) for k, v in weights(model).items())


def test_finite_losses_train():
    model, wrapper = build()
    before = weights(model)
    log = model.train_step(batch(), wrapper)
    assert torch.isfinite(log['loss']) and not unchanged(before, model)


def test_raise_names_the_iteration_and_term_and_leaves_weights_alone():
    model, wrapper = build()
    MessageHub.get_current_instance().update_info('iter', 41)
    before = weights(model)
    with pytest.raises(NonFiniteLossError, match=r'iteration 42: loss=nan.*on_nonfinite_loss'):
        model.train_step(batch(poison=True), wrapper)
    assert unchanged(before, model)
    assert not wrapper.optimizer.state  # no optimizer step was taken


def test_skip_drops_the_step_and_training_goes_on():
    model, wrapper = build(on_nonfinite_loss='skip', max_nonfinite_skips=3)
    before = weights(model)
    assert model.train_step(batch(poison=True), wrapper) == {}
    assert unchanged(before, model) and model.nonfinite_skips == 1
    model.train_step(batch(), wrapper)  # a good step resets the run of skips
    assert not unchanged(before, model)
    model.train_step(batch(poison=True), wrapper)
    model.train_step(batch(poison=True), wrapper)
    with pytest.raises(NonFiniteLossError,
                       match='3 iterations in a row had a non-finite loss .*diverged'):
        model.train_step(batch(poison=True), wrapper)
    assert model.nonfinite_skips == 4


def test_policy_is_validated():
    with pytest.raises(ConfigError, match="on_nonfinite_loss must be one of .*'ignore'"):
        build(on_nonfinite_loss='ignore')
    with pytest.raises(ConfigError, match='max_nonfinite_skips must be >= 1'):
        build(on_nonfinite_loss='skip', max_nonfinite_skips=0)
