"""Every attention-based token fusion returns its attention weights on request,
and its default forward is unchanged (same output, no hooks left)."""
import pytest
import torch

from mmfusion.analysis import record_attention
from mmfusion.registry import MODELS
from mmfusion.utils import register_all_modules

DIMS = dict(image=32, text=32)
FUSIONS = [
    dict(type='SingleStreamFusion', num_heads=4),
    dict(type='BottleneckFusion', num_heads=4),
    dict(type='CrossAttentionFusion', query='text', num_heads=4),
    dict(type='GatedCrossAttentionFusion', query='text', num_heads=4),
    dict(type='CoAttentionFusion', num_heads=4),
    dict(type='PerceiverFusion', num_heads=4, cross_attn_heads=4, num_latents=4),
    dict(type='QFormerFusion', num_heads=4, num_queries=4),
    dict(type='TopDownAttentionFusion', query='text', context='image'),
]


@pytest.mark.parametrize('cfg', FUSIONS, ids=[c['type'] for c in FUSIONS])
def test_attention_on_request(cfg):
    register_all_modules()
    torch.manual_seed(0)
    fusion = MODELS.build(dict(cfg, in_dims=DIMS, out_dim=32)).eval()
    tokens = dict(image=torch.randn(2, 9, 32), text=torch.randn(2, 5, 32))
    masks = dict(text=torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool))
    with torch.no_grad():
        default = fusion.forward_pooled(tokens, masks)
        with record_attention(fusion) as maps:
            recorded = fusion.forward_pooled(tokens, masks)
        after = fusion.forward_pooled(tokens, masks)
    torch.testing.assert_close(recorded, default, atol=1e-5, rtol=1e-5)
    assert torch.equal(after, default)
    assert maps, f'{cfg["type"]} recorded no attention'
    for name, w in maps.items():
        assert w.ndim == 4 and w.shape[0] == 2, (name, w.shape)
        assert (w >= 0).all() and torch.isfinite(w).all()
        sums = w.sum(-1)
        assert torch.all(((sums - 1).abs() < 1e-4) | (sums.abs() < 1e-6)), name
    # every hook is gone and PyTorch's fast path is back
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in fusion.modules())
    assert torch.backends.mha.get_fastpath_enabled()
