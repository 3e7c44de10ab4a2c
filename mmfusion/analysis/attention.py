"""Attention weights of every attention-based fusion module, on request.

Every token fusion of mmfusion attends through ``torch.nn.MultiheadAttention``
(directly, in ``nn.TransformerEncoderLayer`` or in the cross-attention layers
of ``mmfusion.models.layers``), except ``TopDownAttentionFusion``, which
keeps its own softmax weights in ``last_attention``. Inside
:func:`record_attention` a forward pre-hook asks each ``MultiheadAttention``
for its per-head weights (``need_weights=True, average_attn_weights=False``)
and a forward hook stores them; PyTorch's fused fast path, which computes no
weights, is switched off for the duration. Outside the context no hook is
installed, so the default forward is exactly as fast as before and returns
the same values.
"""
import contextlib
from typing import Dict, Iterator

import torch
import torch.nn as nn


@contextlib.contextmanager
def record_attention(model: nn.Module, fusion_only: bool = True
                     ) -> Iterator[Dict[str, torch.Tensor]]:
    """Collect attention weights during the forwards inside the context.

    Args:
        model: any module; with ``fusion_only`` only modules under
            ``model.fusion`` (when the model has one) are recorded.

    Yields:
        A dict filled as the model runs: module name -> weights
        (B, heads, L_query, L_key) of its last call (``TopDownAttentionFusion``:
        (B, glimpses, 1, N_context)).
    """
    root = getattr(model, 'fusion', model) if fusion_only else model
    prefix = 'fusion.' if root is not model else ''
    maps: Dict[str, torch.Tensor] = {}
    handles = []

    def pre_hook(module, args, kwargs):
        kwargs = dict(kwargs)
        kwargs['need_weights'] = True
        kwargs['average_attn_weights'] = False
        return args, kwargs

    for name, module in root.named_modules():
        full = prefix + name if name else prefix.rstrip('.') or type(module).__name__
        if isinstance(module, nn.MultiheadAttention):
            handles.append(module.register_forward_pre_hook(pre_hook, with_kwargs=True))
            handles.append(module.register_forward_hook(
                lambda m, a, out, full=full: maps.__setitem__(full, out[1].detach())))
        elif hasattr(module, 'last_attention'):
            handles.append(module.register_forward_hook(
                lambda m, a, out, full=full: maps.__setitem__(
                    full, m.last_attention.unsqueeze(2))))
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        yield maps
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
        for h in handles:
            h.remove()


__all__ = ['record_attention']
