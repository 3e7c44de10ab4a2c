"""Checks every fusion module must pass; imported by the per-family test files.

The contract (see ``mmfusion/models/fusion/base.py``):

* builds from a config dict through ``MODELS`` and exposes ``out_dim``;
* vector fusions map ``{m: (B, D_m)}`` to ``(B, out_dim)``; token fusions map
  ``{m: (B, N_m, D_m)}`` (+ optional bool masks) to ``(B, N, out_dim)`` and
  ``forward_pooled`` to ``(B, out_dim)``;
* every parameter receives a finite, non-zero gradient.
"""
import torch

from mmfusion.registry import MODELS


def random_vectors(dims: dict, batch: int = 4, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {m: torch.randn(batch, d, generator=g) for m, d in dims.items()}


def random_tokens(dims: dict, lengths: dict, batch: int = 4, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {m: torch.randn(batch, lengths[m], d, generator=g) for m, d in dims.items()}


def padding_masks(lengths: dict, real: dict, batch: int = 4) -> dict:
    """Bool masks (B, N_m): sample ``b`` of modality ``m`` has ``real[m][b]`` real tokens."""
    return {m: torch.arange(lengths[m]).unsqueeze(0) < torch.tensor(real[m]).unsqueeze(1)
            for m in real}


def build_fusion(cfg: dict):
    import mmfusion.models  # noqa: F401  (registers the modules)
    module = MODELS.build(dict(cfg))
    assert type(module).__name__ == cfg['type']
    assert module.out_dim == cfg['out_dim']
    return module


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def assert_every_parameter_gets_a_gradient(module: torch.nn.Module, out: torch.Tensor) -> None:
    """Backpropagate a random projection of ``out``; every parameter must get a
    finite gradient that is not all zeros (catches factors kept outside the
    module tree, dead branches and zero-initialised gates that block others)."""
    g = torch.Generator().manual_seed(1)
    weights = torch.randn(out.shape, generator=g).to(out)
    (out * weights).sum().backward()
    for name, p in module.named_parameters():
        assert p.grad is not None, f'{name} received no gradient'
        assert torch.isfinite(p.grad).all(), f'{name} has a non-finite gradient'
        assert p.grad.abs().sum() > 0, f'{name} has an all-zero gradient'
