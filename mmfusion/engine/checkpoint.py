"""Checkpoints that load with ``torch.load(weights_only=True)``.

torch >= 2.6 refuses to unpickle anything but tensors and plain containers
unless a type is allow-listed, which is what keeps a malicious checkpoint from
running code. MMEngine pickles its message hub into every checkpoint as
``HistoryBuffer`` objects whose pickles call ``getattr`` on a class - a global
that must never be allow-listed, since ``getattr`` reaches any attribute of an
allowed object. So instead of loosening the check:

* :class:`PlainCheckpointHook` converts the message hub and meta information
  to plain data (lists, floats, strings) before a checkpoint is written and
  back after one is read; the file then loads with torch's default,
  unextended allow-list.
* :func:`register_checkpoint_safe_globals` allow-lists only numpy arrays and
  scalars (plain data, as torch's documentation suggests), for checkpoints
  from elsewhere that hold them.
"""
from typing import Any, List

import numpy as np
import torch
from mmengine.hooks import Hook

from mmfusion.registry import HOOKS

_BUFFER_TAG = '__history_buffer__'


def checkpoint_safe_globals() -> List[object]:
    """The plain-data numpy types allowed beyond torch's defaults."""
    dtype_classes = [type(np.dtype(t)) for t in
                     (np.float64, np.float32, np.float16, np.int64, np.int32,
                      np.int16, np.int8, np.uint8, np.bool_)]
    return [np.ndarray, np.dtype, np._core.multiarray._reconstruct,
            np._core.multiarray.scalar, *dtype_classes]


def register_checkpoint_safe_globals() -> None:
    """Add :func:`checkpoint_safe_globals` to torch's weights-only allow-list."""
    torch.serialization.add_safe_globals(checkpoint_safe_globals())


def to_plain(obj: Any) -> Any:
    """Replace HistoryBuffers, numpy arrays and numpy scalars with plain data."""
    from mmengine.logging import HistoryBuffer

    if isinstance(obj, HistoryBuffer):
        log, count = obj.data
        return {_BUFFER_TAG: True, 'max_length': obj.max_length,
                'log_history': log.tolist(), 'count_history': count.tolist()}
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_plain(v) for v in obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def from_plain(obj: Any) -> Any:
    """Inverse of :func:`to_plain` for HistoryBuffers (arrays stay lists)."""
    from mmengine.logging import HistoryBuffer

    if isinstance(obj, dict):
        if obj.get(_BUFFER_TAG):
            return HistoryBuffer(obj['log_history'], obj['count_history'], obj['max_length'])
        return {k: from_plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [from_plain(v) for v in obj]
    return obj


@HOOKS.register_module()
class PlainCheckpointHook(Hook):
    """Write checkpoints as plain data so they load with ``weights_only=True``.

    See the module docstring for why. Runs before any other hook touches a
    checkpoint being saved, and first after one is loaded.
    """
    priority = 'HIGHEST'

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        for key in ('meta', 'message_hub'):
            if key in checkpoint:
                checkpoint[key] = to_plain(checkpoint[key])

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if 'message_hub' in checkpoint:
            checkpoint['message_hub'] = from_plain(checkpoint['message_hub'])
