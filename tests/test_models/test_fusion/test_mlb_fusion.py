"""MLBFusion: shapes, gradients, missing modalities, parameter count."""
import pytest
import torch

from mmfusion.registry import MODELS


def build(**kw):
    import mmfusion.models  # noqa: F401
    return MODELS.build(dict(type='MLBFusion', in_dims=dict(image=12, text=6), out_dim=8,
                             hidden_dim=16, **kw))


def test_shapes_for_two_and_three_modalities():
    torch.manual_seed(0)
    fusion = build()
    out = fusion(dict(image=torch.randn(4, 12), text=torch.randn(4, 6)))
    assert out.shape == (4, fusion.out_dim) == (4, 8)
    three = MODELS.build(dict(type='MLBFusion', in_dims=dict(a=3, b=4, c=5), out_dim=2,
                              hidden_dim=7))
    assert three(dict(a=torch.randn(2, 3), b=torch.randn(2, 4), c=torch.randn(2, 5))).shape \
        == (2, 2)


def test_every_parameter_gets_a_gradient_and_count_matches_formula():
    torch.manual_seed(0)
    fusion = build(dropout=0.0)
    out = fusion(dict(image=torch.randn(4, 12), text=torch.randn(4, 6)))
    (out * torch.randn_like(out)).sum().backward()
    for name, p in fusion.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    expected = (12 + 1) * 16 + (6 + 1) * 16 + (16 + 1) * 8
    assert sum(p.numel() for p in fusion.parameters()) == expected


def test_missing_modality_drops_out_of_the_product():
    torch.manual_seed(0)
    fusion = build(dropout=0.0).eval()
    image, text = torch.randn(3, 12), torch.randn(3, 6)
    mask = dict(text=torch.tensor([True, False, True]))
    out = fusion(dict(image=image, text=text), mask)
    changed = text.clone()
    changed[1] = torch.nan  # a missing sample may hold anything
    out2 = fusion(dict(image=image, text=changed), mask)
    torch.testing.assert_close(out, out2)
    # the present samples do depend on the text
    changed[0] += 1.0
    assert not torch.allclose(fusion(dict(image=image, text=changed), mask)[0], out[0])
    # a missing text leaves the image-only term: P tanh(U x)
    only_image = fusion.out(torch.tanh(fusion.proj['image'](image[1:2])))
    torch.testing.assert_close(out[1:2], only_image)


def test_needs_two_modalities():
    with pytest.raises(ValueError, match='at least 2 modalities'):
        MODELS.build(dict(type='MLBFusion', in_dims=dict(image=4), out_dim=2))
