"""Integrated gradients (captum) over every modality at once.

Sundararajan et al., "Axiomatic Attribution for Deep Networks" (ICML 2017),
through ``captum.attr.IntegratedGradients``: the continuous inputs (images,
spectrograms, vectors) are attributed in the preprocessed space against an
all-zero baseline (the dataset mean for normalised images: the "missing"
input of :mod:`.missing`), text in its token-embedding space against zero
embeddings; a token's attribution is the sum over its embedding dimensions.
Completeness holds per sample: the attributions of all modalities sum to
``score(input) - score(baseline)`` up to the integral's error (captum
reports it as the convergence delta).
"""
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from .attacks import embedding_layer, perturb_embeddings


def integrated_gradients(model: nn.Module, processed: dict, targets: torch.Tensor,
                         modalities: Optional[Sequence[str]] = None, n_steps: int = 32,
                         internal_batch_size: Optional[int] = None
                         ) -> Tuple[Dict[str, torch.Tensor], torch.Tensor]:
    """Integrated gradients of ``model(mode='tensor')[b, targets[b]]``.

    Args:
        processed: a preprocessed batch.
        targets: (B,) class / answer index per sample.
        modalities: which to attribute (default: all); the others are held
            at their values.
        n_steps: points of the Riemann (Gauss-Legendre) sum.

    Returns:
        ``(attributions, delta)``: modality -> attribution with the input's
        shape (text: (B, L), per token), and captum's convergence delta (B,).
    """
    from captum.attr import IntegratedGradients

    inputs = processed['inputs']
    modalities = list(modalities or inputs)
    text = [m for m in modalities if isinstance(inputs[m], dict)]
    dense = [m for m in modalities if m not in text]
    with torch.no_grad():
        embeds = {}
        for m in text:
            embeds[m] = embedding_layer(model, m)(inputs[m]['input_ids']).detach()
    names = dense + text
    values = tuple(inputs[m] for m in dense) + tuple(embeds[m] for m in text)
    fixed = {m: v for m, v in inputs.items() if m not in dense}

    def forward(*xs):
        batch = dict(fixed)
        n = xs[0].shape[0]
        reps = n // next(iter(v for v in values)).shape[0]
        for m, v in fixed.items():  # captum expands the batch by the steps
            if isinstance(v, dict):
                batch[m] = {k: t.repeat(reps, *([1] * (t.ndim - 1))) for k, t in v.items()}
            else:
                batch[m] = v.repeat(reps, *([1] * (v.ndim - 1)))
        batch.update({m: x for m, x in zip(dense, xs[:len(dense)])})
        with perturb_embeddings(model, dict(zip(text, xs[len(dense):])), replace=True):
            return model(batch, None, mode='tensor')

    ig = IntegratedGradients(forward)
    attrs, delta = ig.attribute(values, baselines=tuple(torch.zeros_like(v) for v in values),
                                target=targets, n_steps=n_steps,
                                internal_batch_size=internal_batch_size,
                                return_convergence_delta=True)
    out = {}
    for m, a in zip(names, attrs):
        out[m] = a.sum(-1) if m in text else a
    return out, delta


__all__ = ['integrated_gradients']
