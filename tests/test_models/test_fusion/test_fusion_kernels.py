"""Faster fusion kernels compute what the previous ones computed.

Each test keeps a small frozen copy of the previous formula, run on the new
module's own parameters, and checks outputs and gradients on random inputs,
with and without a missing modality, in eval and train mode (same dropout
seed: the new code draws its dropout masks in the same order).
"""
import functools
import operator

import pytest
import torch
import torch.nn.functional as F
from fusion_checks import build_fusion, n_params, random_vectors

DIMS = dict(image=12, text=9)
B = 6
MASKS = [None, dict(text=torch.tensor([True, False, True, True, False, True]))]


def _where_missing(fusion, mask, name, y, fill):
    present = (mask or {}).get(name)
    return y if present is None else torch.where(present.unsqueeze(-1), y, torch.full_like(y, fill))


def _zero_missing(fusion, feats, mask):
    return {m: _where_missing(fusion, mask, m, feats[m], 0.0) for m in fusion.modalities}


def old_block(fusion, feats, mask):
    """BLOCK before per-chunk products: concatenate every chunk's (B, R * s_c)
    projection, multiply at full width, split again."""
    factors = []
    for name, x in _zero_missing(fusion, feats, mask).items():
        parts = torch.split(fusion.dropout(fusion.proj[name](x)), fusion.chunk_sizes, dim=-1)
        y = torch.cat([merge(p) for merge, p in zip(fusion.merge[name], parts)], dim=-1)
        factors.append(_where_missing(fusion, mask, name, y, 1.0))
    joint = functools.reduce(operator.mul, factors)
    blocks = torch.split(joint, [fusion.rank * s for s in fusion.chunk_sizes], dim=-1)
    zs = []
    for size, block in zip(fusion.chunk_sizes, blocks):
        z = block.view(block.shape[0], fusion.rank, size).sum(dim=1)
        z = torch.sign(z) * (torch.sqrt(z.abs() + fusion.eps) - fusion.eps**0.5)
        zs.append(F.normalize(z, dim=-1))
    return fusion.out(torch.cat(zs, dim=-1))


def old_lmf(fusion, feats, mask):
    """LMF before the broadcast matmul: einsum('bd,rdo->bro') per modality."""
    factors = []
    for name, x in _zero_missing(fusion, feats, mask).items():
        z = F.pad(x, (1, 0), value=1.0)
        y = torch.einsum('bd,rdo->bro', z, fusion.factors[name]).flatten(1)
        factors.append(_where_missing(fusion, mask, name, y, 1.0))
    joint = functools.reduce(operator.mul, factors).view(-1, fusion.rank, fusion.out_dim)
    return torch.einsum('r,bro->bo', fusion.fusion_weights[0], joint) + fusion.fusion_bias


def _run_with_grads(fusion, fn, feats, mask, seed):
    fusion.zero_grad(set_to_none=True)
    torch.manual_seed(seed)
    out = fn(feats, mask)
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(3))
    (out * weights).sum().backward()
    return out.detach(), {n: p.grad.clone() for n, p in fusion.named_parameters()}


@pytest.mark.parametrize('mask', MASKS, ids=['all-present', 'text-missing'])
@pytest.mark.parametrize('train', [False, True], ids=['eval', 'train'])
@pytest.mark.parametrize('name,cfg,old', [
    ('BLOCKFusion', dict(mm_dim=23, chunks=4, rank=3, dropout=0.3), old_block),
    ('LowRankTensorFusion', dict(rank=3), old_lmf),
])
def test_new_kernel_equals_the_old_formula(name, cfg, old, train, mask):
    torch.manual_seed(0)
    fusion = build_fusion(dict(type=name, in_dims=DIMS, out_dim=10, **cfg)).train(train)
    feats = random_vectors(DIMS, batch=B)
    new_out, new_grads = _run_with_grads(fusion, fusion, feats, mask, seed=7)
    old_out, old_grads = _run_with_grads(fusion, lambda f, m: old(fusion, f, m), feats, mask,
                                         seed=7)
    torch.testing.assert_close(new_out, old_out, rtol=1e-5, atol=1e-6)
    assert new_grads.keys() == old_grads.keys()
    for key in new_grads:
        torch.testing.assert_close(new_grads[key], old_grads[key], rtol=1e-4, atol=1e-6,
                                   msg=f'gradient of {key}')
    if mask is not None and not train:  # the mask changes the missing samples only
        full = fusion(feats).detach()
        torch.testing.assert_close(new_out[0], full[0])
        assert not torch.allclose(new_out[1], full[1])


def test_lmf_missing_modality_equals_the_lmf_of_the_rest():
    """With the text missing, the output uses the image factor alone (times
    ones), i.e. the documented LMF of the remaining modality."""
    torch.manual_seed(0)
    fusion = build_fusion(dict(type='LowRankTensorFusion', in_dims=DIMS, out_dim=5, rank=2))
    feats = random_vectors(DIMS, batch=3)
    feats['text'][1] = float('nan')  # never reaches the output
    out = fusion(feats, dict(text=torch.tensor([True, False, True])))
    z = F.pad(feats['image'][1], (1, 0), value=1.0)
    image_only = torch.einsum('d,rdo->ro', z, fusion.factors['image'])
    expected = fusion.fusion_weights[0] @ image_only + fusion.fusion_bias[0]
    torch.testing.assert_close(out[1], expected)
    assert torch.isfinite(out).all()


def test_tucker_default_keeps_the_folded_core_and_its_state_dict_keys():
    """The default is the previous parameterisation: same keys and shapes, so
    checkpoints trained before ``core_dim`` existed still load strictly."""
    torch.manual_seed(0)
    fusion = build_fusion(dict(type='TuckerFusion', in_dims=DIMS, out_dim=7, hidden_dims=4))
    shapes = {k: tuple(v.shape) for k, v in fusion.state_dict().items()}
    assert shapes == {'proj.image.weight': (4, 12), 'proj.image.bias': (4, ),
                      'proj.text.weight': (4, 9), 'proj.text.bias': (4, ),
                      'core': (4, 4, 7), 'bias': (7, )}
    other = build_fusion(dict(type='TuckerFusion', in_dims=DIMS, out_dim=7, hidden_dims=4))
    other.load_state_dict(fusion.state_dict(), strict=True)


def test_tucker_core_dim_is_the_papers_parameterisation():
    """core (h_1, h_2, t_o) then W_o: y = W_o (sum_ij T_ij h_1i h_2j)."""
    torch.manual_seed(0)
    cfg = dict(type='TuckerFusion', in_dims=DIMS, out_dim=7, hidden_dims=dict(image=4, text=5),
               core_dim=3)
    fusion = build_fusion(cfg).eval()
    assert n_params(fusion) == (12 + 1) * 4 + (9 + 1) * 5 + 4 * 5 * 3 + (3 + 1) * 7
    assert tuple(fusion.core.shape) == (4, 5, 3) and not hasattr(fusion, 'bias')
    feats = random_vectors(DIMS, batch=B)
    h1 = torch.tanh(fusion.proj['image'](feats['image']))
    h2 = torch.tanh(fusion.proj['text'](feats['text']))
    expected = fusion.out(torch.einsum('bi,bj,ijk->bk', h1, h2, fusion.core))
    torch.testing.assert_close(fusion(feats), expected)
    with pytest.raises(ValueError, match='core_dim must be an integer >= 1'):
        build_fusion(dict(cfg, core_dim=0))


def old_sum(fusion, feats, mask):
    """SumFusion before: stack the projections to (B, M, out_dim), then sum."""
    parts = [_where_missing(fusion, mask, m, fusion.proj[m](x), 0.0)
             for m, x in _zero_missing(fusion, feats, mask).items()]
    return F.relu(torch.stack(parts, dim=1).sum(dim=1))


def old_linear_sum(fusion, feats, mask):
    """LinearSumFusion before: weights (B, M, 1) times the stacked projections."""
    parts = torch.stack([_where_missing(fusion, mask, m, fusion.proj[m](x), 0.0)
                         for m, x in _zero_missing(fusion, feats, mask).items()], dim=1)
    present = torch.stack([(mask or {}).get(m, torch.ones(B, dtype=torch.bool))
                           for m in fusion.modalities], dim=1)
    logits = fusion.weight_logits.expand_as(present).masked_fill(~present, -3.4e38)
    weights = logits.softmax(dim=1) * present
    return F.relu((weights.unsqueeze(-1) * parts).sum(dim=1))


@pytest.mark.parametrize('mask', MASKS + [dict(image=torch.zeros(B, dtype=torch.bool),
                                               text=torch.zeros(B, dtype=torch.bool))],
                         ids=['all-present', 'text-missing', 'all-missing'])
@pytest.mark.parametrize('name,old', [('SumFusion', old_sum),
                                      ('LinearSumFusion', old_linear_sum)])
def test_sums_without_stacking_equal_the_old_formula(name, old, mask):
    torch.manual_seed(0)
    fusion = build_fusion(dict(type=name, in_dims=DIMS, out_dim=10))
    with torch.no_grad():  # non-uniform modality weights
        getattr(fusion, 'weight_logits', torch.zeros(2)).copy_(torch.tensor([0.3, -0.4]))
    feats = random_vectors(DIMS, batch=B)
    new_out, new_grads = _run_with_grads(fusion, fusion, feats, mask, seed=7)
    old_out, old_grads = _run_with_grads(fusion, lambda f, m: old(fusion, f, m), feats, mask,
                                         seed=7)
    torch.testing.assert_close(new_out, old_out)
    for key in new_grads:
        torch.testing.assert_close(new_grads[key], old_grads[key], msg=f'gradient of {key}')


def old_gmu(fusion, feats, mask):
    """Bimodal GMU before: stacked candidates, softmax over [a, 0] as the gate."""
    inputs = list(_zero_missing(fusion, feats, mask).values())
    candidates = torch.stack([torch.tanh(fusion.proj[m](x))
                              for m, x in zip(fusion.modalities, inputs)], dim=1)
    logits = fusion.gate(torch.cat(inputs, dim=-1)).view(-1, 1, fusion.out_dim)
    logits = torch.cat([logits, torch.zeros_like(logits)], dim=1)
    return (logits.softmax(dim=1) * candidates).sum(dim=1)


def test_bimodal_gmu_equals_the_old_formula():
    torch.manual_seed(0)
    fusion = build_fusion(dict(type='GMUFusion', in_dims=DIMS, out_dim=10))
    feats = random_vectors(DIMS, batch=B)
    new_out, new_grads = _run_with_grads(fusion, fusion, feats, None, seed=7)
    old_out, old_grads = _run_with_grads(fusion, lambda f, m: old_gmu(fusion, f, m), feats,
                                         None, seed=7)
    torch.testing.assert_close(new_out, old_out)
    for key in new_grads:
        torch.testing.assert_close(new_grads[key], old_grads[key], msg=f'gradient of {key}')
    gates = fusion.last_gates
    assert gates.shape == (B, 2, 10)
    torch.testing.assert_close(gates.sum(dim=1), torch.ones(B, 10))
    z = torch.sigmoid(fusion.gate(torch.cat([feats['image'], feats['text']], -1)))
    torch.testing.assert_close(gates[:, 0], z.detach())


def test_masked_product_multiplies_the_factors_only():
    """No product that starts from the integer 1 (math.prod did): for two
    factors the graph is a single multiplication of the two leaves."""
    from mmfusion.models.layers import masked_product
    fusion = build_fusion(dict(type='MLBFusion', in_dims=DIMS, out_dim=4, hidden_dim=8))
    feats = {m: torch.randn(3, 5, requires_grad=True) for m in DIMS}
    out = masked_product(fusion, feats, None, lambda name, x: x)
    assert type(out.grad_fn).__name__ == 'MulBackward0'
    leaves = [fn for fn, _ in out.grad_fn.next_functions]
    assert [type(fn).__name__ for fn in leaves] == ['AccumulateGrad', 'AccumulateGrad']
    assert {id(fn.variable) for fn in leaves} == {id(x) for x in feats.values()}


def old_tucker(fusion, feats, mask):
    """Tucker before: contract the core one mode at a time (folded output factor)."""
    hidden = [_where_missing(fusion, mask, m, torch.tanh(fusion.proj[m](x)), 1.0)
              for m, x in _zero_missing(fusion, feats, mask).items()]
    fused = fusion.core
    for i, h in enumerate(hidden):
        fused = torch.einsum('bi,i...->b...' if i == 0 else 'bi,bi...->b...', h, fused)
    return fused + fusion.bias


def old_late_mean(fusion, feats, mask):
    """LateFusion 'mean' before: stacked logits times 1 / (present count)."""
    logits = torch.stack([fusion.heads[m](x) for m, x in feats.items()], dim=1)
    return logits.mean(dim=1)


@pytest.mark.parametrize('mask', MASKS, ids=['all-present', 'text-missing'])
@pytest.mark.parametrize('dims', [DIMS, dict(image=12, text=9, audio=7)], ids=['2', '3'])
def test_tucker_outer_product_contraction_equals_the_old_formula(dims, mask):
    torch.manual_seed(0)
    fusion = build_fusion(dict(type='TuckerFusion', in_dims=dims, out_dim=10,
                               hidden_dims=dict(image=4, text=5, audio=3)
                               if len(dims) == 3 else 4)).eval()
    feats = random_vectors(dims, batch=B)
    new_out, new_grads = _run_with_grads(fusion, fusion, feats, mask, seed=7)
    old_out, old_grads = _run_with_grads(fusion, lambda f, m: old_tucker(fusion, f, m), feats,
                                         mask, seed=7)
    torch.testing.assert_close(new_out, old_out, rtol=1e-5, atol=1e-6)
    for key in new_grads:
        torch.testing.assert_close(new_grads[key], old_grads[key], rtol=1e-4, atol=1e-6)


def test_late_mean_equals_the_old_formula():
    torch.manual_seed(0)
    fusion = build_fusion(dict(type='LateFusion', in_dims=DIMS, out_dim=5))
    feats = random_vectors(DIMS, batch=B)
    new_out, new_grads = _run_with_grads(fusion, fusion, feats, None, seed=7)
    old_out, old_grads = _run_with_grads(fusion, lambda f, m: old_late_mean(fusion, f, m),
                                         feats, None, seed=7)
    torch.testing.assert_close(new_out, old_out)
    for key in new_grads:
        torch.testing.assert_close(new_grads[key], old_grads[key])
