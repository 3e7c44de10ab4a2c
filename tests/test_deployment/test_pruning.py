"""Pruning: the magnitude criteria, physical channel removal, fine-tune keeping zeros."""
import copy

import pytest
import torch
from conftest import small_cfg

from mmfusion.deployment.pruning import (
    finetune,
    make_permanent,
    prune_channels,
    prune_unstructured,
    sparsity,
)

VQA = 'configs/vqa/mmshapes_vqa.py'


@pytest.fixture(scope='module')
def vqa_model(mmshapes_root, tmp_path_factory):
    from mmfusion.apis import init_model

    cfg = small_cfg(VQA, mmshapes_root, str(tmp_path_factory.mktemp('prune')), max_epochs=1)
    torch.manual_seed(0)
    return init_model(cfg, None)


def _batch(model, size=4):
    torch.manual_seed(1)
    return dict(image=torch.randn(size, 3, 64, 64),
                text=dict(input_ids=torch.randint(4, 20, (size, 7)),
                          attention_mask=torch.ones(size, 7, dtype=torch.long)))


def test_unstructured_pruning_survives_finetune(vqa_model):
    model = prune_unstructured(copy.deepcopy(vqa_model), 0.6)
    assert sparsity(model) == pytest.approx(0.6, abs=0.01)
    # the globally smallest weights went: every surviving |w| >= every pruned one
    weights = torch.cat([m.weight_orig.detach().abs().flatten() for m in model.modules()
                         if hasattr(m, 'weight_orig')])
    masks = torch.cat([m.weight_mask.flatten() for m in model.modules()
                       if hasattr(m, 'weight_mask')])
    assert weights[masks == 0].max() <= weights[masks == 1].min()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    finetune(model, model.cfg, iters=2, lr=1e-2)
    assert any(not torch.equal(before[n], p) for n, p in model.named_parameters())
    make_permanent(model)
    assert not any(hasattr(m, 'weight_orig') for m in model.modules())
    assert sparsity(model) >= 0.6 - 0.01  # the masks held during the fine-tune


def test_channel_pruning_equals_zeroing_the_channels(vqa_model):
    """Removing a block's inner channels equals zeroing conv2's inputs from them;
    removing MLB hidden units equals zeroing those columns of its output layer."""
    model = vqa_model.eval()
    pruned = copy.deepcopy(model)
    removed = prune_channels(pruned, 0.5)
    assert removed['fusion'] == model.fusion.out.in_features // 2
    blocks = [n for n in removed if n != 'fusion']
    assert len(blocks) == 4 and all(removed[n] > 0 for n in blocks)

    zeroed = copy.deepcopy(model)
    modules = dict(zeroed.named_modules())
    for name in blocks:
        block, small = modules[name], dict(pruned.named_modules())[name]
        kept = _kept(block.conv1.weight, small.conv1.weight)
        # the kept filters are the ones with the largest L2 norms
        norms = block.conv1.weight.detach().flatten(1).norm(dim=1)
        assert norms[kept].min() >= norms[~kept].max()
        with torch.no_grad():
            block.conv2.weight[:, ~kept] = 0
    kept = _kept(model.fusion.out.weight.t(), pruned.fusion.out.weight.t())
    with torch.no_grad():
        zeroed.fusion.out.weight[:, ~kept] = 0

    def count(m):
        return sum(p.numel() for p in m.parameters())

    assert count(pruned) < 0.75 * count(model)
    batch = _batch(model)
    with torch.no_grad():
        torch.testing.assert_close(pruned(batch), zeroed(batch), atol=1e-5, rtol=1e-4)
        assert not torch.allclose(pruned(batch), model(batch), atol=1e-3)


def _kept(full: torch.Tensor, small: torch.Tensor) -> torch.Tensor:
    """Which rows of ``full`` survive in ``small`` (matched by value)."""
    full, small = full.detach().flatten(1), small.detach().flatten(1)
    dist = torch.cdist(full, small, compute_mode='donot_use_mm_for_euclid_dist')
    return dist.min(dim=1).values < 1e-6


def test_bad_amount_is_rejected(vqa_model):
    with pytest.raises(ValueError, match='amount must be in'):
        prune_channels(copy.deepcopy(vqa_model), 1.0)
    with pytest.raises(ValueError, match='amount must be in'):
        prune_unstructured(copy.deepcopy(vqa_model), -0.1)
