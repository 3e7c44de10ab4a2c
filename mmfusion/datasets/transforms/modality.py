"""Removing modalities from a sample: test-time removal, modality dropout and
transforms that run only while a modality is present.

How a missing modality travels (one path for every cause: a list-file row
without the field, a VQA question without its image, a transform below):

1. ``results['missing_modalities']``: list of modality names (``'image'``,
   ``'audio'``, ``'text'``, ...) this sample lacks. The data key of a removed
   modality (``img``, ``audio`` ...) is popped, so nothing downstream can read
   it by mistake.
2. :class:`~mmfusion.datasets.transforms.PackMultiModalInputs` packs ``None``
   for such a modality and sets the data sample's ``modality_mask``
   (``{modality: bool}``, False = missing).
3. ``MultiModalDataPreprocessor`` keeps ``None`` out of the batch tensors;
   the models turn the data samples' masks into ``{modality: BoolTensor
   (B,)}``, run each encoder on the present samples only and hand the mask
   to the fusion module.
"""
import copy
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
from mmcv.transforms import BaseTransform, Compose

from mmfusion.errors import ConfigError
from mmfusion.registry import TRANSFORMS

# modality name -> key of the pipeline results that holds its data (as in
# PackMultiModalInputs' defaults) and the key of its file path, if any
MODALITY_DATA_KEYS = dict(image='img', depth='depth', text='text', audio='audio',
                          vector='vector')
MODALITY_PATH_KEYS = dict(image='img_path', depth='depth_path', audio='audio_path')
MISSING_KEY = 'missing_modalities'


def missing_modalities(results: dict) -> List[str]:
    """The modalities a pipeline sample lacks (``results['missing_modalities']``)."""
    return list(results.get(MISSING_KEY) or ())


def is_missing(results: dict, modality: str) -> bool:
    """Whether ``modality`` is marked missing in the pipeline sample ``results``."""
    return modality in (results.get(MISSING_KEY) or ())


def remove_modality(results: dict, modality: str, data_key: Optional[str] = None) -> dict:
    """Mark ``modality`` missing in ``results`` and drop its data (in place).

    Args:
        results: a pipeline sample.
        modality: the modality name, e.g. ``'image'``.
        data_key: the results key holding its data; defaults to
            :data:`MODALITY_DATA_KEYS` (``image`` -> ``img``).

    Returns:
        ``results``, for chaining. The path (``img_path``) is kept: it stays
        in the data sample's meta information.
    """
    key = data_key or MODALITY_DATA_KEYS.get(modality, modality)
    results.pop(key, None)
    missing = missing_modalities(results)
    if modality not in missing:
        missing.append(modality)
    results[MISSING_KEY] = missing
    return results


def _check_modalities(owner: str, modalities: Union[str, Sequence[str]]) -> List[str]:
    names = [modalities] if isinstance(modalities, str) else list(modalities)
    if not names or not all(isinstance(m, str) and m for m in names):
        raise ConfigError(f'{owner}: modalities must be a non-empty list of modality names '
                          f'(e.g. ["image"]), got {modalities!r}')
    return names


class _ModalityTransform(BaseTransform):
    """Shared by the removal transforms: the modality -> results key map and
    the check that the modality is in the sample at all."""

    def __init__(self, modalities: Union[str, Sequence[str]],
                 keys: Optional[Dict[str, str]] = None) -> None:
        self.modalities = _check_modalities(type(self).__name__, modalities)
        self.keys = dict(MODALITY_DATA_KEYS)
        self.keys.update(keys or {})

    def _has(self, results: dict, modality: str) -> bool:
        """Present in this sample; raise for a modality the sample never had."""
        if is_missing(results, modality):
            return False
        key = self.keys.get(modality, modality)
        if key not in results:
            raise ConfigError(
                f'{type(self).__name__}: modality {modality!r} (results key {key!r}) is not in '
                f'the sample, which has keys {sorted(results)}; name a modality the pipeline '
                f'loads, or map it with keys=dict({modality}=...) (e.g. text="question" for '
                'VQA)')
        return True


@TRANSFORMS.register_module()
class RemoveModality(_ModalityTransform):
    """Remove modalities from every sample: test-time missing-modality evaluation.

    Put it right before ``PackMultiModalInputs`` (``tools/test.py
    --remove-modality image`` does that to the test pipeline).

    Args:
        modalities: names of the modalities to remove, e.g. ``['image']``.
        keys: modality -> results key, for keys other than
            :data:`MODALITY_DATA_KEYS` (e.g. ``dict(text='question')``).

    Adds/updates ``missing_modalities`` and pops the modalities' data keys.
    Raises :class:`ConfigError` for a modality the sample does not carry.
    """

    def transform(self, results: dict) -> dict:
        for modality in self.modalities:
            if self._has(results, modality):
                remove_modality(results, modality, self.keys.get(modality, modality))
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(modalities={self.modalities})'


@TRANSFORMS.register_module()
class ModalityDropout(_ModalityTransform):
    """Drop each modality of a training sample with its own probability, never all.

    Modality dropout (as in Neverova et al., "ModDrop", TPAMI 2016): training
    on samples that miss a modality teaches the fusion module and the head to
    predict from what is left, so a model keeps working when one modality is
    absent at test time. Put it right before ``PackMultiModalInputs``.

    Args:
        modalities: the modalities that may be dropped.
        prob: drop probability, one float for all or ``{modality: float}``.
        keys: modality -> results key (see :class:`RemoveModality`).

    Each of ``modalities`` present in the sample is dropped independently
    with its probability. A sample never loses every modality it has: when
    the draw would drop all the listed ones and the sample holds no other
    (no other :data:`MODALITY_DATA_KEYS` key, or ``keys`` entry, is in it),
    one, chosen uniformly, is kept instead. So
    ``ModalityDropout(['audio'], prob=0.2)`` on image+audio samples drops
    the sound of one sample in five and never touches the image.
    Randomness comes from NumPy's global generator, which MMEngine seeds per
    worker.
    """

    def __init__(self, modalities: Union[str, Sequence[str]],
                 prob: Union[float, Dict[str, float]] = 0.25,
                 keys: Optional[Dict[str, str]] = None) -> None:
        super().__init__(modalities, keys)
        probs = prob if isinstance(prob, dict) else {m: prob for m in self.modalities}
        unknown = sorted(set(probs) - set(self.modalities))
        if unknown or set(probs) != set(self.modalities):
            raise ConfigError(f'ModalityDropout: prob must give one probability per modality '
                              f'of {self.modalities}, got keys {sorted(probs)}')
        for name, p in probs.items():
            if not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
                raise ConfigError(f'ModalityDropout: prob[{name!r}] must be in [0, 1], got '
                                  f'{p!r}')
        self.probs = {m: float(probs[m]) for m in self.modalities}

    def transform(self, results: dict) -> dict:
        present = [m for m in self.modalities if self._has(results, m)]
        drop = [m for m in present if np.random.rand() < self.probs[m]]
        if present and len(drop) == len(present) and not self._has_other_modality(results):
            drop.pop(np.random.randint(len(drop)))
        for modality in drop:
            remove_modality(results, modality, self.keys.get(modality, modality))
        return results

    def _has_other_modality(self, results: dict) -> bool:
        return any(key in results and not is_missing(results, m)
                   for m, key in self.keys.items() if m not in self.modalities)

    def __repr__(self) -> str:
        return f'{type(self).__name__}(prob={self.probs})'


@TRANSFORMS.register_module()
class IfModalityPresent(BaseTransform):
    """Run ``transforms`` only on samples that have ``modality``.

    For datasets with missing modalities: the augmentations of one modality
    (``AudioRandomGain``, ``AudioLogMel`` ...) read its data key and would
    fail on a sample without it. Wrap them::

        dict(type='IfModalityPresent', modality='audio', transforms=[
            dict(type='LoadAudioFromFile'), dict(type='AudioLogMel', ...)])

    Args:
        modality: the modality name.
        transforms: transform configs, run in order.
        path_key: the results key of its file path; a sample where it is
            absent or ``None`` lacks the modality too. Defaults to
            :data:`MODALITY_PATH_KEYS` (``audio`` -> ``audio_path``).
    """

    def __init__(self, modality: str, transforms: Sequence[dict],
                 path_key: Optional[str] = None) -> None:
        self.modality = _check_modalities('IfModalityPresent', modality)[0]
        self.path_key = path_key or MODALITY_PATH_KEYS.get(self.modality)
        self.transforms = Compose(list(transforms))

    def transform(self, results: dict) -> Optional[dict]:
        if is_missing(results, self.modality) or (
                self.path_key and results.get(self.path_key) is None):
            if not is_missing(results, self.modality):
                remove_modality(results, self.modality)
            return results
        return self.transforms(results)

    def __repr__(self) -> str:
        return f'{type(self).__name__}(modality={self.modality!r}, {self.transforms!r})'


def insert_before_pack(pipeline: Sequence[dict], transform: dict) -> List[dict]:
    """A copy of the pipeline config ``pipeline`` with ``transform`` inserted
    right before its ``PackMultiModalInputs`` step.

    What ``tools/test.py --remove-modality`` does to the test pipeline, for
    other tools that evaluate a model with a modality removed::

        pipeline = insert_before_pack(cfg.test_dataloader.dataset.pipeline,
                                      dict(type='RemoveModality', modalities=['image']))

    Raises :class:`ConfigError` when the pipeline has no packing step.
    """
    steps = [copy.deepcopy(dict(step)) for step in pipeline]
    for i, step in enumerate(steps):
        if str(step.get('type', '')).split('.')[-1] == 'PackMultiModalInputs':
            return steps[:i] + [dict(transform)] + steps[i:]
    raise ConfigError('the pipeline has no PackMultiModalInputs step to insert '
                      f'{transform.get("type")} before; found '
                      f'{[s.get("type") for s in steps]}')


def with_modalities_removed(pipeline: Sequence[dict],
                            modalities: Union[str, Sequence[str]]) -> List[dict]:
    """A copy of the pipeline config ``pipeline`` that removes ``modalities``
    from every sample: a :class:`RemoveModality` right before the packing
    step, with the results keys taken from that step's ``inputs``.

    For test-time missing-modality evaluation (``tools/test.py
    --remove-modality image``) and for other tools that score a model with a
    modality removed::

        cfg.test_dataloader.dataset.pipeline = with_modalities_removed(
            cfg.test_dataloader.dataset.pipeline, ['image'])
    """
    names = _check_modalities('remove-modality', modalities)
    pack = next((dict(step) for step in pipeline
                 if str(step.get('type', '')).split('.')[-1] == 'PackMultiModalInputs'), {})
    keys = dict(pack.get('inputs') or {})
    if keys:
        unknown = [m for m in names if m not in keys]
        if unknown:
            raise ConfigError(f'cannot remove {unknown}: the pipeline packs only modalities '
                              f'{sorted(keys)} (PackMultiModalInputs inputs)')
    transform = dict(type='RemoveModality', modalities=names)
    if keys:
        transform['keys'] = {m: keys[m] for m in names}
    return insert_before_pack(pipeline, transform)


__all__ = ['IfModalityPresent', 'MISSING_KEY', 'MODALITY_DATA_KEYS', 'MODALITY_PATH_KEYS',
           'ModalityDropout', 'RemoveModality', 'insert_before_pack', 'is_missing',
           'missing_modalities', 'remove_modality', 'with_modalities_removed']
