"""Tests of the tensor-decomposition fusions: MFH, MUTAN, BLOCK, Tucker, TFN, LMF."""
import itertools
import math

import pytest
import torch
from fusion_checks import (
    assert_every_parameter_gets_a_gradient,
    build_fusion,
    n_params,
    random_vectors,
)

# Importing the submodules registers the modules before __init__ lists them.
from mmfusion.models.fusion.bilinear import MFBFusion, MFHFusion
from mmfusion.models.fusion.tensor import (
    BLOCKFusion,
    LowRankTensorFusion,
    MUTANFusion,
    TensorFusion,
    TuckerFusion,
)

B = 4
DIMS2 = {'image': 6, 'text': 5}
DIMS3 = {'image': 6, 'text': 5, 'audio': 3}
OUT = 8


def _cfg(kind: str, dims: dict) -> dict:
    """A tiny config of each module, dropout off so gradients and outputs are deterministic."""
    extra = {
        'MFHFusion': dict(order=2, factor_k=3, dropout=0.0),
        'MUTANFusion': dict(hidden_dims=7, mm_dim=9, rank=3, dropout=0.0),
        'BLOCKFusion': dict(mm_dim=10, chunks=3, rank=2, dropout=0.0),
        'TuckerFusion': dict(hidden_dims=4, dropout=0.0),
        'TensorFusion': dict(hidden_dims=(9, ), dropout=0.0),
        'LowRankTensorFusion': dict(rank=3),
    }[kind]
    return dict(type=kind, in_dims=dims, out_dim=OUT, **extra)


def _expected_params(kind: str, dims: dict) -> int:
    """The ``Parameter count:`` formula of each docstring, for ``_cfg(kind, dims)``."""
    d = list(dims.values())
    if kind == 'MFHFusion':
        order, k = 2, 3
        return order * sum((x + 1) * k * (OUT // order) for x in d)
    if kind == 'MUTANFusion':
        h, mm, r = 7, 9, 3
        return sum((x + 1) * h for x in d) + len(d) * (h + 1) * r * mm + (mm + 1) * OUT
    if kind == 'BLOCKFusion':
        mm, r, sizes = 10, 2, [4, 3, 3]
        return (sum((x + 1) * mm for x in d) + len(d) * sum((s + 1) * r * s for s in sizes)
                + (mm + 1) * OUT)
    if kind == 'TuckerFusion':
        h = 4
        return sum((x + 1) * h for x in d) + h ** len(d) * OUT + OUT
    if kind == 'TensorFusion':
        sizes = [math.prod(x + 1 for x in d), 9, OUT]
        return sum((a + 1) * b for a, b in itertools.pairwise(sizes))
    if kind == 'LowRankTensorFusion':
        r = 3
        return sum(r * (x + 1) * OUT for x in d) + r + OUT
    raise AssertionError(kind)


KINDS = ['MFHFusion', 'MUTANFusion', 'BLOCKFusion', 'TuckerFusion', 'TensorFusion',
         'LowRankTensorFusion']


def _changed(feats: dict, name: str, row: int, value: float | None = None) -> dict:
    """Copy of ``feats`` with row ``row`` of modality ``name`` set to ``value`` (or shifted)."""
    out = {m: t.clone() for m, t in feats.items()}
    if value is None:
        out[name][row] += 1.0
    else:
        out[name][row] = value
    return out


# ------------------------------------------------------------- common contract


@pytest.mark.parametrize('dims', [DIMS2, DIMS3], ids=['2mod', '3mod'])
@pytest.mark.parametrize('kind', KINDS)
def test_build_shape_params_and_gradients(kind, dims):
    torch.manual_seed(0)
    fusion = build_fusion(_cfg(kind, dims))
    assert fusion.input_form == 'vector'
    assert n_params(fusion) == _expected_params(kind, dims)
    out = fusion(random_vectors(dims, batch=B))
    assert out.shape == (B, OUT)
    assert torch.isfinite(out).all()
    assert_every_parameter_gets_a_gradient(fusion, out)


@pytest.mark.parametrize('kind', KINDS)
def test_missing_modality_never_leaks_and_present_inputs_matter(kind):
    torch.manual_seed(0)
    fusion = build_fusion(_cfg(kind, DIMS3)).eval()
    feats = random_vectors(DIMS3, batch=B)
    mask = {'audio': torch.tensor([True, True, False, True]),
            'text': torch.tensor([True, False, True, True])}
    out = fusion(feats, mask)
    assert torch.isfinite(out).all()

    # Anything, even NaN, in a missing sample changes nothing, output or gradient.
    nan_feats = _changed(_changed(feats, 'audio', 2, float('nan')), 'text', 1, float('nan'))
    fusion.train()
    out_nan = fusion(nan_feats, mask)
    assert_every_parameter_gets_a_gradient(fusion, out_nan)
    fusion.eval()
    torch.testing.assert_close(fusion(nan_feats, mask), out)
    torch.testing.assert_close(fusion(_changed(feats, 'audio', 2, 5.0), mask), out)

    # A present input changes its own sample's output only.
    for name, row in [('audio', 0), ('text', 2), ('image', 1)]:
        out2 = fusion(_changed(feats, name, row), mask)
        assert not torch.allclose(out2[row], out[row]), (name, row)
        others = [i for i in range(B) if i != row]
        torch.testing.assert_close(out2[others], out[others])


@pytest.mark.parametrize('kind', KINDS)
def test_config_errors(kind):
    cfg = _cfg(kind, DIMS2)
    with pytest.raises(ValueError, match=f'{kind} fuses at least 2 modalities'):
        build_fusion(dict(cfg, in_dims={'image': 6}))
    fusion = build_fusion(cfg)
    feats = random_vectors(DIMS2)
    feats['text'] = torch.randn(B, 4)
    with pytest.raises(ValueError, match=r"in_dims\['text'\]=5"):
        fusion(feats)
    with pytest.raises(ValueError, match=r"mask\['image'\] must have shape \(4,\)"):
        fusion(random_vectors(DIMS2), {'image': torch.ones(3, dtype=torch.bool)})
    if 'dropout' in cfg:
        with pytest.raises(ValueError, match=rf'{kind}: dropout must be in \[0, 1\)'):
            build_fusion(dict(cfg, dropout=1.0))


# ------------------------------------------------------------------------- MFH


def test_mfh_order_one_is_mfb():
    torch.manual_seed(0)
    mfb = MFBFusion(DIMS3, out_dim=OUT, factor_k=3).eval()
    mfh = MFHFusion(DIMS3, out_dim=OUT, order=1, factor_k=3).eval()
    mfh.proj[0].load_state_dict(mfb.proj.state_dict())
    feats = random_vectors(DIMS3)
    mask = {'audio': torch.tensor([True, False, True, True])}
    torch.testing.assert_close(mfh(feats, mask), mfb(feats, mask))


def test_mfh_matches_cascaded_reference():
    torch.manual_seed(0)
    fusion = MFHFusion(DIMS2, out_dim=OUT, order=2, factor_k=3).eval()
    feats = random_vectors(DIMS2)

    def normalise(z):
        z = torch.sign(z) * (torch.sqrt(z.abs() + fusion.eps) - fusion.eps ** 0.5)
        return z / z.norm(dim=-1, keepdim=True)

    exp1 = fusion.proj[0]['image'](feats['image']) * fusion.proj[0]['text'](feats['text'])
    exp2 = fusion.proj[1]['image'](feats['image']) * fusion.proj[1]['text'](feats['text']) * exp1
    z1 = normalise(exp1.view(B, 4, 3).sum(-1))
    z2 = normalise(exp2.view(B, 4, 3).sum(-1))
    out = fusion(feats)
    torch.testing.assert_close(out, torch.cat([z1, z2], dim=-1))
    # Each block has unit norm, so every row has norm sqrt(order).
    torch.testing.assert_close(out[:, :4].norm(dim=-1), torch.ones(B))
    torch.testing.assert_close(out.norm(dim=-1), torch.full((B, ), 2 ** 0.5))


def test_mfh_argument_errors():
    with pytest.raises(ValueError, match='out_dim=9 must be a positive multiple of order=2'):
        MFHFusion(DIMS2, out_dim=9, order=2)
    with pytest.raises(ValueError, match='MFHFusion: order must be >= 1, got 0'):
        MFHFusion(DIMS2, out_dim=8, order=0)
    with pytest.raises(ValueError, match='MFHFusion: factor_k must be >= 1, got 0'):
        MFHFusion(DIMS2, out_dim=8, factor_k=0)


# ----------------------------------------------------------------------- MUTAN


def test_mutan_matches_reference_computation():
    torch.manual_seed(0)
    fusion = MUTANFusion(DIMS2, out_dim=OUT, hidden_dims={'image': 7, 'text': 4}, mm_dim=9,
                         rank=3).eval()
    feats = random_vectors(DIMS2)
    h_v = torch.tanh(fusion.hidden['image'](feats['image']))
    h_q = torch.tanh(fusion.hidden['text'](feats['text']))
    z = 0
    for r in range(3):
        rows = slice(r * 9, (r + 1) * 9)
        p_v = h_v @ fusion.merge['image'].weight[rows].T + fusion.merge['image'].bias[rows]
        p_q = h_q @ fusion.merge['text'].weight[rows].T + fusion.merge['text'].bias[rows]
        z = z + p_v * p_q
    torch.testing.assert_close(fusion(feats), fusion.out(z))


def test_mutan_is_a_rank_constrained_tucker():
    """MUTAN (merge biases 0) equals Tucker whose core is built from MUTAN's rank factors."""
    torch.manual_seed(0)
    h, mm, r = {'image': 4, 'text': 3}, 5, 2
    mutan = MUTANFusion(DIMS2, out_dim=OUT, hidden_dims=h, mm_dim=mm, rank=r).eval()
    for name in DIMS2:
        torch.nn.init.zeros_(mutan.merge[name].bias)
    tucker = TuckerFusion(DIMS2, out_dim=OUT, hidden_dims=h).eval()
    w_v = mutan.merge['image'].weight.view(r, mm, 4)
    w_q = mutan.merge['text'].weight.view(r, mm, 3)
    with torch.no_grad():
        for name in DIMS2:
            tucker.proj[name].load_state_dict(mutan.hidden[name].state_dict())
        tucker.core.copy_(torch.einsum('rki,rkj,ok->ijo', w_v, w_q, mutan.out.weight))
        tucker.bias.copy_(mutan.out.bias)
    feats = random_vectors(DIMS2)
    torch.testing.assert_close(tucker(feats), mutan(feats))


def test_mutan_argument_errors():
    with pytest.raises(ValueError, match=r"hidden_dims must have exactly the modalities of "
                                         r"in_dims \['image', 'text'\], got \['image'\]"):
        MUTANFusion(DIMS2, out_dim=4, hidden_dims={'image': 3})
    with pytest.raises(ValueError, match="hidden_dims must be integers >= 1, got 0 for 'text'"):
        MUTANFusion(DIMS2, out_dim=4, hidden_dims={'image': 3, 'text': 0})
    with pytest.raises(ValueError, match='MUTANFusion: rank must be an integer >= 1, got 0'):
        MUTANFusion(DIMS2, out_dim=4, rank=0)


# ----------------------------------------------------------------------- BLOCK


def test_block_chunk_sizes_follow_mm_dim():
    assert BLOCKFusion(DIMS2, out_dim=4, mm_dim=10, chunks=3).chunk_sizes == [4, 3, 3]
    assert BLOCKFusion(DIMS2, out_dim=4, mm_dim=12, chunks=4).chunk_sizes == [3, 3, 3, 3]


@pytest.mark.parametrize('normalize', [True, False])
def test_block_matches_reference_computation(normalize):
    torch.manual_seed(0)
    fusion = BLOCKFusion(DIMS2, out_dim=OUT, mm_dim=10, chunks=3, rank=2,
                         normalize=normalize).eval()
    feats = random_vectors(DIMS2)
    x_v = fusion.proj['image'](feats['image'])
    x_q = fusion.proj['text'](feats['text'])
    zs, start = [], 0
    for c, size in enumerate([4, 3, 3]):
        cols = slice(start, start + size)
        start += size
        m = fusion.merge['image'][c](x_v[:, cols]) * fusion.merge['text'][c](x_q[:, cols])
        z = m.view(B, 2, size).sum(1)
        if normalize:
            z = torch.sign(z) * (torch.sqrt(z.abs() + fusion.eps) - fusion.eps ** 0.5)
            z = z / z.norm(dim=-1, keepdim=True)
        zs.append(z)
    torch.testing.assert_close(fusion(feats), fusion.out(torch.cat(zs, -1)))


def test_block_core_is_block_diagonal():
    """Chunk c of the fused vector depends on chunk c of the projected inputs only."""
    torch.manual_seed(0)
    fusion = BLOCKFusion(DIMS2, out_dim=OUT, mm_dim=10, chunks=3, rank=2).eval()
    captured = {}
    fusion.out.register_forward_hook(lambda mod, args, out: captured.update(z=args[0]))
    feats = random_vectors(DIMS2)
    fusion(feats)
    z = captured['z']
    # Shift the projected image along a direction that only moves its chunk 0.
    with torch.no_grad():
        fusion.proj['image'].bias[:4] += 1.0
    fusion(feats)
    z2 = captured['z']
    assert not torch.allclose(z2[:, :4], z[:, :4])
    torch.testing.assert_close(z2[:, 4:], z[:, 4:])


def test_block_argument_errors():
    with pytest.raises(ValueError, match='BLOCKFusion: chunks=11 must be <= mm_dim=10'):
        BLOCKFusion(DIMS2, out_dim=4, mm_dim=10, chunks=11)
    with pytest.raises(ValueError, match='BLOCKFusion: rank must be an integer >= 1, got 0'):
        BLOCKFusion(DIMS2, out_dim=4, mm_dim=10, chunks=2, rank=0)


# ---------------------------------------------------------------------- Tucker


def test_tucker_matches_einsum_for_three_modalities():
    torch.manual_seed(0)
    hidden = {'image': 3, 'text': 4, 'audio': 2}
    fusion = TuckerFusion(DIMS3, out_dim=OUT, hidden_dims=hidden).eval()
    assert fusion.core.shape == (3, 4, 2, OUT)
    feats = random_vectors(DIMS3)
    h = {m: torch.tanh(fusion.proj[m](feats[m])) for m in DIMS3}
    expected = torch.einsum('bi,bj,bk,ijko->bo', h['image'], h['text'], h['audio'],
                            fusion.core) + fusion.bias
    torch.testing.assert_close(fusion(feats), expected)
    # A missing modality contributes ones: the core is summed over its mode.
    mask = {'text': torch.tensor([True, False, True, True])}
    expected_1 = torch.einsum('i,k,ijko->o', h['image'][1], h['audio'][1],
                              fusion.core) + fusion.bias
    torch.testing.assert_close(fusion(feats, mask)[1], expected_1)


def test_tucker_refuses_huge_core():
    with pytest.raises(ValueError, match=r'TuckerFusion: the core tensor of shape '
                                         r'\(300, 300, 256\) would have 23,040,000 parameters.*'
                                         r'MUTANFusion or BLOCKFusion'):
        TuckerFusion({'image': 2048, 'text': 768}, out_dim=256, hidden_dims=300)
    # The limit is configurable.
    fusion = TuckerFusion(DIMS2, out_dim=OUT, hidden_dims=5, max_core_params=5 * 5 * OUT)
    assert fusion.core.numel() == 5 * 5 * OUT
    with pytest.raises(ValueError, match='max_core_params=199'):
        TuckerFusion(DIMS2, out_dim=OUT, hidden_dims=5, max_core_params=5 * 5 * OUT - 1)


# ------------------------------------------------------------------------- TFN


def test_tfn_matches_outer_product_reference():
    torch.manual_seed(0)
    fusion = TensorFusion(DIMS2, out_dim=OUT, hidden_dims=()).eval()
    feats = random_vectors(DIMS2)
    one = torch.ones(B, 1)
    z_v = torch.cat([one, feats['image']], -1)
    z_q = torch.cat([one, feats['text']], -1)
    flat = torch.einsum('bi,bj->bij', z_v, z_q).flatten(1)
    assert flat.shape == (B, 7 * 6)
    torch.testing.assert_close(fusion.outer_product(feats), flat)
    torch.testing.assert_close(fusion(feats), fusion.mlp[0](flat))


def test_tfn_missing_modality_reduces_to_tfn_of_the_others():
    torch.manual_seed(0)
    three = TensorFusion(DIMS3, out_dim=OUT, hidden_dims=(9, )).eval()
    two = TensorFusion(DIMS2, out_dim=OUT, hidden_dims=(9, )).eval()
    first = three.mlp[0]
    with torch.no_grad():
        # Audio is the last (fastest) mode; its constant-1 entry is index 0.
        two.mlp[0].weight.copy_(first.weight.view(9, 7, 6, 4)[..., 0].reshape(9, 42))
        two.mlp[0].bias.copy_(first.bias)
        two.mlp[-1].load_state_dict(three.mlp[-1].state_dict())
    feats = random_vectors(DIMS3)
    missing = {'audio': torch.zeros(B, dtype=torch.bool)}
    torch.testing.assert_close(three(feats, missing), two(feats))
    # ... which is not what it gives with the audio present.
    assert not torch.allclose(three(feats), two(feats))


def test_tfn_refuses_huge_outer_product():
    with pytest.raises(ValueError, match=r'TensorFusion: the flattened outer product has '
                                         r'\(300 \+ 1\) \* \(300 \+ 1\) \* \(74 \+ 1\) = '
                                         r'6,795,075 entries.*LowRankTensorFusion'):
        TensorFusion({'text': 300, 'image': 300, 'audio': 74}, out_dim=1, hidden_dims=(32, ))
    with pytest.raises(ValueError, match=r'more than max_params=100'):
        TensorFusion(DIMS2, out_dim=OUT, hidden_dims=(), max_params=100)
    with pytest.raises(ValueError, match=r'TensorFusion: hidden_dims\[1\] must be an integer'):
        TensorFusion(DIMS2, out_dim=OUT, hidden_dims=(4, 0))


# ------------------------------------------------------------------------- LMF


def test_lmf_factors_are_registered_and_trained():
    torch.manual_seed(0)
    fusion = LowRankTensorFusion(DIMS3, out_dim=OUT, rank=3)
    names = {name for name, _ in fusion.named_parameters()}
    assert names == {'factors.image', 'factors.text', 'factors.audio', 'fusion_weights',
                     'fusion_bias'}
    for name, dim in DIMS3.items():
        assert fusion.factors[name].shape == (3, dim + 1, OUT)
    out = fusion(random_vectors(DIMS3))
    assert_every_parameter_gets_a_gradient(fusion, out)
    before = {m: f.detach().clone() for m, f in fusion.factors.items()}
    torch.optim.SGD(fusion.parameters(), lr=0.1).step()
    for m, f in fusion.factors.items():
        assert not torch.equal(f, before[m]), m


def test_lmf_equals_tfn_with_the_low_rank_weight():
    """The LMF claim: LMF is TFN + one Linear whose weight is sum_r w_r A_1^r (x) ... (x) A_M^r."""
    torch.manual_seed(0)
    lmf = LowRankTensorFusion(DIMS3, out_dim=OUT, rank=3).eval()
    tfn = TensorFusion(DIMS3, out_dim=OUT, hidden_dims=()).eval()
    a = [lmf.factors[m] for m in DIMS3]
    weight = torch.einsum('r,rio,rjo,rko->oijk', lmf.fusion_weights[0], *a)
    with torch.no_grad():
        tfn.mlp[0].weight.copy_(weight.reshape(OUT, -1))
        tfn.mlp[0].bias.copy_(lmf.fusion_bias[0])
    feats = random_vectors(DIMS3)
    torch.testing.assert_close(lmf(feats), tfn(feats))


def test_lmf_missing_modality_equals_lmf_of_the_others():
    torch.manual_seed(0)
    three = LowRankTensorFusion(DIMS3, out_dim=OUT, rank=3).eval()
    two = LowRankTensorFusion(DIMS2, out_dim=OUT, rank=3).eval()
    state = {k: v for k, v in three.state_dict().items() if k != 'factors.audio'}
    two.load_state_dict(state)
    feats = random_vectors(DIMS3)
    mask = {'audio': torch.tensor([False, True, False, True])}
    out = three(feats, mask)
    two_out = two(feats)
    torch.testing.assert_close(out[[0, 2]], two_out[[0, 2]])
    assert not torch.allclose(out[[1, 3]], two_out[[1, 3]])


def test_lmf_rank_error():
    with pytest.raises(ValueError, match='LowRankTensorFusion: rank must be an integer >= 1'):
        LowRankTensorFusion(DIMS2, out_dim=OUT, rank=0)
