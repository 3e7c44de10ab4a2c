"""The fusion library as a whole: every module is listed, registered and runs
through the model's code path, and (on a GPU) under mixed precision."""
import pytest
import torch
from fusion_checks import build_fusion, padding_masks, random_tokens, random_vectors

import mmfusion.models.fusion as fusion_lib
from mmfusion.models.fusion import TOKEN_FUSIONS, VECTOR_FUSIONS, BaseTokenFusion, BaseVectorFusion
from mmfusion.registry import MODELS

DIMS = dict(image=16, text=8)
LENGTHS = dict(image=4, text=5)
# the arguments a module needs beyond in_dims/out_dim, kept small
EXTRA = dict(FiLMFusion=dict(target='image'), MLBFusion=dict(hidden_dim=32),
             MUTANFusion=dict(hidden_dims=16, mm_dim=24, rank=3),
             BLOCKFusion=dict(mm_dim=32, chunks=4, rank=2), TuckerFusion=dict(hidden_dims=8),
             TensorFusion=dict(hidden_dims=(16,)), TopDownAttentionFusion=dict(hidden_dim=16))


def small_cfg(name: str) -> dict:
    return dict(type=name, in_dims=dict(DIMS), out_dim=16, **EXTRA.get(name, {}))


def test_every_fusion_module_is_listed_once():
    def subclasses(base):
        found, todo = set(), [base]
        while todo:
            for sub in todo.pop().__subclasses__():
                todo.append(sub)
                if sub.__module__.startswith('mmfusion.models.fusion'):
                    found.add(sub.__name__)
        return found

    assert len(set(VECTOR_FUSIONS)) == len(VECTOR_FUSIONS) == 15
    assert len(set(TOKEN_FUSIONS)) == len(TOKEN_FUSIONS) == 8
    assert set(VECTOR_FUSIONS) == subclasses(BaseVectorFusion)
    assert set(TOKEN_FUSIONS) == subclasses(BaseTokenFusion)
    for name in VECTOR_FUSIONS + TOKEN_FUSIONS:
        assert MODELS.get(name) is getattr(fusion_lib, name)


@pytest.mark.parametrize('name', VECTOR_FUSIONS + TOKEN_FUSIONS)
def test_runs_with_the_documented_interface(name):
    torch.manual_seed(0)
    fusion = build_fusion(small_cfg(name)).eval()
    if name in VECTOR_FUSIONS:
        out = fusion(random_vectors(DIMS))
    else:
        masks = padding_masks(LENGTHS, dict(image=[4, 4, 2, 1], text=[5, 3, 5, 1]))
        tokens = random_tokens(DIMS, LENGTHS)
        fused = fusion(tokens, masks)
        assert fused.ndim == 3 and fused.shape[0] == 4 and fused.shape[2] == 16
        out = fusion.forward_pooled(tokens, masks)
    assert out.shape == (4, 16)
    assert torch.isfinite(out).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')
@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
@pytest.mark.parametrize('name', VECTOR_FUSIONS + TOKEN_FUSIONS)
def test_mixed_precision_on_gpu(name, dtype):
    """Forward and backward under autocast stay finite: no fp32-only constants
    (e.g. a -1e9 mask fill overflows fp16) and no dtype mismatches."""
    torch.manual_seed(0)
    fusion = build_fusion(small_cfg(name)).cuda()
    with torch.autocast('cuda', dtype=dtype):
        if name in VECTOR_FUSIONS:
            out = fusion({k: v.cuda() for k, v in random_vectors(DIMS).items()},
                         {'text': torch.tensor([True, False, True, True], device='cuda')})
        else:
            masks = padding_masks(LENGTHS, dict(image=[4, 0, 2, 1], text=[5, 3, 5, 1]))
            out = fusion.forward_pooled(
                {k: v.cuda() for k, v in random_tokens(DIMS, LENGTHS).items()},
                {k: v.cuda() for k, v in masks.items()})
    assert torch.isfinite(out.float()).all()
    out.float().square().mean().backward()
    for pname, p in fusion.named_parameters():
        assert p.grad is None or torch.isfinite(p.grad).all(), pname
