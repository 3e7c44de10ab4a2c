"""Remove modalities from a preprocessed batch, for "missing modality" robustness and
for the value function of leave-one-out and Shapley contributions.

This is the one place that defines "missing" for the analysis tools. Two ways:

* ``'mask'`` (default for every model that takes masks): the missing-modality
  path of training and ``tools/test.py --remove-modality``. The modality's
  batch input becomes ``None`` and each data sample's ``modality_mask`` says
  it is absent, so its encoder does not run and the fusion module handles the
  absence its own way (masked sums, learnt missing tokens, ...). What the
  model does when a modality is truly gone.
* ``'zero'``: the input set to zero after the data preprocessor (the
  dataset's mean for normalised images, silence for spectrograms, an empty
  question for text: ``attention_mask`` all zero). The encoder still runs
  on that placeholder; for models without the mask path
  (:class:`~mmfusion.models.MultiTaskModel`) and to compare with other
  papers' zero-filling.
"""
from typing import Iterable

import torch

MISSING_MODES = ('mask', 'zero')


def supports_modality_mask(model) -> bool:
    """Whether ``model`` honours ``modality_mask`` (see ``accepts_modality_mask``
    on :class:`~mmfusion.models.architectures.base.BaseMultiModalModel`)."""
    return bool(getattr(model, 'accepts_modality_mask', False))


def drop_modalities(processed: dict, modalities: Iterable[str], mode: str = 'mask') -> dict:
    """A copy of a preprocessed batch (``data_preprocessor`` output) with
    ``modalities`` removed the ``mode`` way (module docstring). The tensors
    of the other modalities are shared, not copied; with ``'mask'`` the data
    samples are copies, so the batch can be reused for other coalitions."""
    if mode not in MISSING_MODES:
        raise ValueError(f'drop_modalities: mode must be one of {MISSING_MODES}, got {mode!r}')
    modalities = list(modalities)
    if not modalities:
        return processed
    inputs = dict(processed['inputs'])
    for m in modalities:
        if m not in inputs:
            raise KeyError(f'cannot drop modality {m!r}: the batch has {sorted(inputs)}')
        x = inputs[m]
        if mode == 'mask':
            inputs[m] = None
        elif isinstance(x, dict):  # tokenised text
            inputs[m] = {k: torch.zeros_like(v) for k, v in x.items()}
        else:
            inputs[m] = torch.zeros_like(x)
    out = dict(processed)
    out['inputs'] = inputs
    if mode == 'mask':
        samples = []
        for sample in processed.get('data_samples') or ():
            sample = sample.clone()
            mask = dict(sample.metainfo.get('modality_mask', {}))
            mask.update({m: False for m in modalities})
            sample.set_metainfo(dict(modality_mask=mask))
            samples.append(sample)
        out['data_samples'] = samples
    return out


__all__ = ['MISSING_MODES', 'drop_modalities', 'supports_modality_mask']
