"""Remove modalities from a preprocessed batch, for "missing modality" robustness and
for the value function of leave-one-out and Shapley contributions.

A missing modality is its input set to zero after the data preprocessor: the
dataset's mean for normalised images (their preprocessor subtracts it), zero
for other tensors, and an empty question (no real token: ``attention_mask``
all zero) for text, which the masked poolings of mmfusion's encoders and
fusions turn into zero features. This is the one place that defines
"missing" for the analysis tools.
"""
from typing import Iterable

import torch


def drop_modalities(processed: dict, modalities: Iterable[str]) -> dict:
    """A copy of a preprocessed batch (``data_preprocessor`` output) with
    ``modalities`` removed as described in the module docstring; the
    tensors of the other modalities are shared, not copied."""
    modalities = list(modalities)
    if not modalities:
        return processed
    inputs = dict(processed['inputs'])
    for m in modalities:
        if m not in inputs:
            raise KeyError(f'cannot drop modality {m!r}: the batch has {sorted(inputs)}')
        x = inputs[m]
        if isinstance(x, dict):  # tokenised text
            inputs[m] = {k: torch.zeros_like(v) for k, v in x.items()}
        else:
            inputs[m] = torch.zeros_like(x)
    out = dict(processed)
    out['inputs'] = inputs
    return out


__all__ = ['drop_modalities']
