"""The shared building blocks of mmfusion.models.layers, and the import rule
that component files take shared helpers from there, not from siblings."""
import ast
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from mmfusion.errors import ConfigError
from mmfusion.models.layers import (
    CrossAttentionBlock,
    PreNormCrossAttention,
    build_mlp,
    check_dropout,
    check_int,
    check_min_modalities,
    check_positive,
    check_strides,
    classifier_mlp,
    concat_context,
    conv_gn_relu,
    encoder_layer,
    fill_missing,
    image_size,
    key_padding_bias,
    masked_cross_attention,
    masked_mean,
    masked_outputs,
    masked_product,
    masked_softmax,
    masked_tokens,
    modality_linears,
    norm_groups_for,
    output_projection,
    power_l2_normalize,
    present_mask,
    project_tokens,
    token_mask,
    transformer_dims,
    zero_missing,
)
from mmfusion.structures import MultiModalDataSample

MODELS_DIR = Path(__file__).resolve().parents[2] / 'mmfusion' / 'models'


class _Fusion:
    """The little of a fusion module that the per-modality helpers read."""

    def __init__(self, *modalities: str) -> None:
        self.modalities = list(modalities)


def _n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ----------------------------------------------------------------- masking
def test_masked_mean_is_the_mean_over_real_tokens():
    g = torch.Generator().manual_seed(0)
    tokens = torch.randn(3, 5, 4, generator=g)
    mask = torch.tensor([[1, 1, 0, 0, 0], [1, 0, 1, 0, 1], [0, 0, 0, 0, 0]], dtype=torch.bool)
    tokens[~mask] = float('nan')  # padding content must not matter
    out = masked_mean(tokens.nan_to_num(1e6), mask)
    assert out.shape == (3, 4)
    torch.testing.assert_close(out[0], tokens[0, :2].mean(dim=0))
    torch.testing.assert_close(out[1], tokens[1, [0, 2, 4]].mean(dim=0))
    torch.testing.assert_close(out[2], torch.zeros(4))  # no real token: zeros, not NaN
    clean = torch.randn(2, 3, 4, generator=g)
    torch.testing.assert_close(masked_mean(clean, None), clean.mean(dim=1))


def test_masked_softmax_ignores_absent_entries_and_sums_to_one():
    logits = torch.tensor([[2.0, -1.0, 0.5], [0.3, 5.0, -2.0], [1.0, 1.0, 1.0]])
    present = torch.tensor([[True, False, True], [False, True, False], [False, False, False]])
    weights = masked_softmax(logits, present, dim=1)
    assert torch.isfinite(weights).all()
    assert (weights[~present] == 0).all()
    torch.testing.assert_close(weights[:2].sum(dim=1), torch.ones(2))
    torch.testing.assert_close(weights[0, [0, 2]], logits[0, [0, 2]].softmax(dim=0))
    assert weights[1, 1] == 1.0
    assert (weights[2] == 0).all()  # nothing present: all zero


def test_key_padding_bias_gives_padding_exactly_zero_weight():
    mask = torch.tensor([[True, True, False], [False, False, False]])
    bias = key_padding_bias(mask, torch.float32)
    assert bias.dtype == torch.float32 and bias.shape == (2, 3)
    assert (bias[mask] == 0).all()
    assert (bias[~mask] == torch.finfo(torch.float32).min).all()
    weights = (torch.randn(2, 3) + bias).softmax(dim=-1)
    assert weights[0, 2] == 0.0
    assert torch.isfinite(weights[1]).all()  # all padding: finite, never NaN


def test_token_mask_defaults_to_all_real_and_checks_the_shape():
    tokens = torch.zeros(2, 4, 3)
    assert token_mask(tokens, None, 'text', 'Owner').all()
    assert token_mask(tokens, {'image': torch.zeros(2, 7)}, 'text', 'Owner').shape == (2, 4)
    given = torch.tensor([[1, 1, 0, 0], [1, 0, 0, 0]])
    assert token_mask(tokens, {'text': given}, 'text', 'Owner').dtype == torch.bool
    with pytest.raises(ValueError, match=r"Owner: masks\['text'\] must have shape \(2, 4\)"):
        token_mask(tokens, {'text': torch.ones(2, 5, dtype=torch.bool)}, 'text', 'Owner')


def test_masked_tokens_zero_the_padding():
    tokens = torch.randn(2, 3, 4)
    mask = torch.tensor([[True, False, True], [False, False, False]])
    tokens[~mask] = float('nan')
    out, keep = masked_tokens(tokens, {'text': mask}, 'text', 'Owner')
    assert torch.equal(keep, mask)
    assert (out[~mask] == 0).all()
    torch.testing.assert_close(out[mask], tokens[mask])


def test_present_mask_columns_follow_the_modalities():
    feats = {'image': torch.zeros(3, 2), 'text': torch.zeros(3, 5)}
    present = present_mask(_Fusion('image', 'text'), feats,
                           {'text': torch.tensor([True, False, True])})
    assert torch.equal(present, torch.tensor([[True, True], [True, False], [True, True]]))
    with pytest.raises(ValueError, match=r"_Fusion: mask\['image'\] must have shape \(3,\)"):
        present_mask(_Fusion('image', 'text'), feats, {'image': torch.ones(2, dtype=torch.bool)})


def test_fill_missing_and_zero_missing_replace_missing_rows():
    x = torch.tensor([[1.0, 2.0], [float('nan'), float('inf')]])
    present = torch.tensor([True, False])
    torch.testing.assert_close(fill_missing(x, present, 7.0, 'a', 'Owner'),
                               torch.tensor([[1.0, 2.0], [7.0, 7.0]]))
    assert fill_missing(x, None, 0.0, 'a', 'Owner') is x
    with pytest.raises(ValueError, match=r"Owner: mask\['a'\] must have shape \(2,\)"):
        fill_missing(x, torch.ones(3, dtype=torch.bool), 0.0, 'a', 'Owner')
    feats = {'a': x, 'b': torch.ones(2, 3)}
    out = zero_missing(_Fusion('a', 'b'), feats, {'a': present})
    assert list(out) == ['a', 'b']
    torch.testing.assert_close(out['a'], torch.tensor([[1.0, 2.0], [0.0, 0.0]]))
    assert list(zero_missing(_Fusion('a', 'b'), feats, None, names=['b'])) == ['b']


def test_masked_outputs_keep_missing_samples_out_of_output_and_gradient():
    linear = nn.Linear(2, 3)
    x = torch.tensor([[1.0, 2.0], [float('nan'), 1.0]], requires_grad=True)
    present = torch.tensor([True, False])
    out = masked_outputs(_Fusion('a'), {'a': x}, {'a': present}, lambda name, v: linear(v),
                         fill=0.5)['a']
    torch.testing.assert_close(out[0], linear(x[0].detach()))
    assert (out[1] == 0.5).all()  # the bias does not count either
    out.sum().backward()
    assert torch.isfinite(linear.weight.grad).all()
    assert torch.isfinite(x.grad).all() and (x.grad[1] == 0).all()


def test_masked_product_drops_missing_modalities():
    feats = {'a': torch.tensor([[2.0], [3.0]]), 'b': torch.tensor([[5.0], [float('nan')]])}
    prod = masked_product(_Fusion('a', 'b'), feats, {'b': torch.tensor([True, False])},
                          lambda name, v: v + 1)
    torch.testing.assert_close(prod, torch.tensor([[3.0 * 6.0], [4.0]]))


# --------------------------------------------------------------- attention
def test_masked_cross_attention_ignores_padding_and_zeroes_empty_contexts():
    torch.manual_seed(0)
    attn = nn.MultiheadAttention(8, 2, batch_first=True).eval()
    query, context = torch.randn(3, 4, 8), torch.randn(3, 5, 8)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [0, 0, 0, 0, 0]], dtype=torch.bool)
    out = masked_cross_attention(attn, query, context, mask)
    other = context.clone()
    other[0, 3:] = 100.0  # new padding values must change nothing
    torch.testing.assert_close(masked_cross_attention(attn, query, other, mask), out)
    expected, _ = attn(query[:1], context[:1, :3], context[:1, :3])
    torch.testing.assert_close(out[:1], expected)
    assert (out[2] == 0).all()
    assert (masked_cross_attention(attn, query, context[:, :0], mask[:, :0]) == 0).all()


def test_pre_norm_cross_attention_passes_x_through_without_context():
    block = PreNormCrossAttention(8, 2, 0.0).eval()
    x = torch.randn(2, 3, 8)
    out = block(x, torch.randn(2, 4, 8), torch.zeros(2, 4, dtype=torch.bool))
    torch.testing.assert_close(out, x)
    assert _n_params(block) == 4 * 8 * 8 + 8 * 8


def test_gated_cross_attention_block_starts_as_identity():
    e, f = 8, 12
    block = CrossAttentionBlock(e, 2, f, 0.0, gated=True).eval()
    x = torch.randn(2, 3, e)
    out = block(x, torch.randn(2, 4, e), torch.ones(2, 4, dtype=torch.bool))
    torch.testing.assert_close(out, x)
    assert _n_params(block) == 4 * e * e + 2 * e * f + 11 * e + f + 2
    assert _n_params(CrossAttentionBlock(e, 2, f, 0.0)) == 4 * e * e + 2 * e * f + 11 * e + f


# -------------------------------------------------------------------- MLPs
def test_build_mlp_and_classifier_layouts():
    mlp = build_mlp([6, 5, 4, 3], dropout=0.2, act_out=True)
    assert [type(m) for m in mlp] == [nn.Linear, nn.ReLU, nn.Dropout] * 2 + [nn.Linear, nn.ReLU]
    assert mlp(torch.randn(2, 6)).shape == (2, 3)
    assert [type(m) for m in build_mlp([6, 3], 0.0)] == [nn.Linear]
    head = classifier_mlp(6, 3, hidden_dim=5, dropout=0.1)
    assert [type(m) for m in head] == [nn.Linear, nn.ReLU, nn.Dropout, nn.Linear]
    assert [type(m) for m in classifier_mlp(6, 3)] == [nn.Dropout, nn.Linear]
    assert head(torch.randn(2, 6)).shape == (2, 3)


def test_modality_linears_take_one_or_per_modality_sizes():
    shared = modality_linears({'a': 3, 'b': 5}, 4)
    assert list(shared) == ['a', 'b']
    assert (shared['a'].in_features, shared['a'].out_features) == (3, 4)
    assert (shared['b'].in_features, shared['b'].out_features) == (5, 4)
    own = modality_linears({'a': 3, 'b': 5}, {'a': 2, 'b': 7})
    assert own['a'].out_features == 2 and own['b'].out_features == 7


def test_power_l2_normalize_gives_unit_rows_with_the_signs_kept():
    x = torch.tensor([[4.0, -9.0, 0.0], [0.0, 0.0, 0.0]])
    out = power_l2_normalize(x, eps=0.0)
    expected = torch.tensor([2.0, -3.0, 0.0]) / math.sqrt(13.0)
    torch.testing.assert_close(out[0], expected)
    assert (out[1] == 0).all()  # continuous at 0: no NaN
    rows = power_l2_normalize(torch.randn(5, 7), eps=1e-8)
    torch.testing.assert_close(rows.norm(dim=-1), torch.ones(5))


# ------------------------------------------------------------- transformer
def test_transformer_dims_defaults_and_errors():
    assert transformer_dims('T', {'a': 1, 'b': 2}, 16, None, 4, None, 0.1) == (16, 64)
    assert transformer_dims('T', {'a': 1, 'b': 2}, 16, 8, 2, 10, 0.0) == (8, 10)
    with pytest.raises(ValueError, match='T fuses at least 2 modalities'):
        transformer_dims('T', {'a': 1}, 16, None, 4, None, 0.1)
    with pytest.raises(ValueError, match='T: embed_dim=10 must be divisible by num_heads=4'):
        transformer_dims('T', {'a': 1, 'b': 2}, 16, 10, 4, None, 0.1)
    with pytest.raises(ValueError, match='T: num_layers must be >= 1, got 0'):
        transformer_dims('T', {'a': 1, 'b': 2}, 16, None, 4, None, 0.1, num_layers=0)
    with pytest.raises(ValueError, match=r'T: dropout must be in \[0, 1\)'):
        transformer_dims('T', {'a': 1, 'b': 2}, 16, None, 4, None, 1.0)


def test_encoder_layer_and_output_projection():
    e, f = 8, 12
    layer = encoder_layer(e, 2, f, 0.0)
    assert layer.norm_first and layer.self_attn.batch_first
    assert _n_params(layer) == 4 * e * e + 2 * e * f + 9 * e + f
    assert isinstance(output_projection(8, 8), nn.Identity)
    proj = output_projection(8, 5)
    assert (proj.in_features, proj.out_features) == (8, 5)


def test_project_tokens_keeps_padding_out():
    proj = modality_linears({'a': 3, 'b': 2}, 4)
    tokens = {'a': torch.randn(2, 5, 3), 'b': torch.randn(2, 1, 2)}
    mask = torch.tensor([[1, 1, 0, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    tokens['a'][~mask] = float('nan')
    projected, keep = project_tokens(_Fusion('a', 'b'), proj, tokens, {'a': mask})
    assert projected['a'].shape == (2, 5, 4) and torch.isfinite(projected['a']).all()
    assert torch.equal(keep['a'], mask) and keep['b'].all()
    only_b, _ = project_tokens(_Fusion('a', 'b'), proj, tokens, None, names=['b'])
    assert list(only_b) == ['b']


def test_concat_context_adds_one_type_embedding_per_modality():
    tokens = {'a': torch.zeros(2, 3, 4), 'b': torch.ones(2, 2, 4)}
    masks = {'a': torch.ones(2, 3, dtype=torch.bool), 'b': torch.zeros(2, 2, dtype=torch.bool)}
    context, mask = concat_context(['b', 'a'], tokens, masks, torch.tensor([[1.0] * 4, [2.0] * 4]))
    assert context.shape == (2, 5, 4) and mask.shape == (2, 5)
    assert (context[:, :2] == 2.0).all() and (context[:, 2:] == 2.0).all()
    assert torch.equal(mask, torch.tensor([[False] * 2 + [True] * 3] * 2))
    plain, _ = concat_context(['a'], tokens, masks)
    assert torch.equal(plain, tokens['a'])


# ------------------------------------------------------------- checks, conv
def test_argument_checks_name_the_owner():
    check_dropout('X', 0.0)
    with pytest.raises(ValueError, match=r'X: dropout must be in \[0, 1\), got -0.1'):
        check_dropout('X', -0.1)
    check_positive('X', rank=1, integer=True)
    with pytest.raises(ValueError, match='X: rank must be an integer >= 1, got 1.5'):
        check_positive('X', integer=True, rank=1.5)
    with pytest.raises(ValueError, match='use ConcatFusion for a unimodal baseline'):
        check_min_modalities('X', {'a': 1}, baseline='ConcatFusion')
    assert check_int('X', 'n', 3) == 3
    for bad in (True, 0, 2.0, '2'):
        with pytest.raises(ConfigError, match='X: n must be an integer >= 1'):
            check_int('X', 'n', bad)
    assert check_int('X', 'n', 0, minimum=0) == 0
    assert check_strides('X', [8, 16, 32]) == (8, 16, 32)
    for bad in ((16, 8), (8, 8), (), 8, (0, 8)):
        with pytest.raises(ConfigError, match='X: strides must be increasing'):
            check_strides('X', bad)


def test_conv_gn_relu_and_norm_groups():
    block = conv_gn_relu(4, 6, groups=norm_groups_for('H', 6, None))
    assert block[1].num_groups == 2  # gcd(32, 6)
    out = block(torch.randn(2, 4, 5, 7))
    assert out.shape == (2, 6, 5, 7) and (out >= 0).all()
    assert norm_groups_for('H', 64, None) == 32 and norm_groups_for('H', 64, 8) == 8
    with pytest.raises(ConfigError, match='H: norm_groups=5 must be an integer >= 1 dividing'):
        norm_groups_for('H', 64, 5)


def test_image_size_reads_the_metainfo():
    sample = MultiModalDataSample(metainfo=dict(img_shape=(30, 40, 3), ori_shape=[60, 80]))
    assert image_size(sample) == (30, 40)
    assert image_size(sample, 'ori_shape') == (60, 80)
    assert image_size(sample, 'batch_input_shape') is None
    assert image_size(None) is None


# --------------------------------------------------------------- structure
def _relative_imports(path: Path) -> list[tuple[int, str, list[str]]]:
    """(level, module, names) of every relative import, and of absolute
    ``mmfusion.models`` imports as level 0."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ''
            if node.level or module.startswith('mmfusion.models'):
                found.append((node.level, module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            found += [(0, a.name, []) for a in node.names if a.name.startswith('mmfusion.models')]
    return found


def _component_files(package: str) -> list[Path]:
    files = sorted(p for p in (MODELS_DIR / package).glob('*.py') if p.name != '__init__.py')
    assert files, f'no files under {MODELS_DIR / package}'
    return files


def _sibling_imports(path: Path, package: str, allowed: set[str]) -> list[str]:
    siblings = {p.stem for p in _component_files(package)}
    bad = []
    for level, module, names in _relative_imports(path):
        head = module.split('.')[0]
        if level == 1 and head in siblings - allowed:
            bad.append(f'.{module}')
        elif level == 1 and not module:
            bad += [f'. import {n}' for n in names if n in siblings - allowed]
        elif level == 0 and module.startswith(f'mmfusion.models.{package}.'):
            if module.split('.')[3] not in allowed:
                bad.append(module)
    return bad


@pytest.mark.parametrize('path', _component_files('fusion'), ids=lambda p: p.name)
def test_fusion_files_import_only_base_and_layers(path):
    assert _sibling_imports(path, 'fusion', allowed={'base'}) == []
    # Outside the fusion package only the layers, and for base.py the
    # encoders' output type it documents.
    allowed = {'layers'} | ({'encoders'} if path.name == 'base.py' else set())
    outside = [module for level, module, _ in _relative_imports(path)
               if level == 2 and module.split('.')[0] not in allowed]
    assert outside == []


@pytest.mark.parametrize('path', _component_files('heads'), ids=lambda p: p.name)
def test_heads_import_no_sibling_head(path):
    assert _sibling_imports(path, 'heads', allowed=set()) == []
    outside = [module for level, module, _ in _relative_imports(path)
               if level == 2 and module.split('.')[0] not in {'layers', 'losses'}]
    assert outside == []


@pytest.mark.parametrize('path', sorted((MODELS_DIR / 'layers').glob('*.py')),
                         ids=lambda p: p.name)
def test_layers_import_no_model_component(path):
    """The layers sit below every component, so they import none of them."""
    assert [m for level, m, _ in _relative_imports(path) if level != 1] == []


def test_structure_check_catches_a_sibling_import(tmp_path):
    """The check above is not vacuous: a borrowed helper is reported."""
    bad = tmp_path / 'late.py'
    bad.write_text('from .concat import build_mlp\nfrom .base import BaseVectorFusion\n'
                   'from mmfusion.models.fusion.linear import present_mask\n')
    assert _sibling_imports(bad, 'fusion', allowed={'base'}) == [
        '.concat', 'mmfusion.models.fusion.linear']
