"""Checkpoints that never run code on load and survive a crash while being written.

Loading. torch's weights-only unpickler rebuilds tensors and plain containers
and refuses every other global unless it is allow-listed; that is what keeps
a malicious checkpoint from running code. :func:`load_checkpoint_file` calls
``torch.load(weights_only=True)`` explicitly (so the
``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` switch cannot turn it off) with exactly
torch's defaults plus numpy arrays and scalars (:func:`checkpoint_safe_globals`,
plain data), and turns a refusal into :class:`UnsafeCheckpointError` naming
the offending type and how to convert a trusted file. It is registered as
MMEngine's loader for local paths, so ``--resume``, ``load_from``,
``tools/test.py``, ``init_cfg=dict(type='Pretrained')`` and the inference API
all go through it.

MMEngine pickles its message hub into every checkpoint as ``HistoryBuffer``
objects, whose pickles call ``getattr`` on a class - a global that must never
be allow-listed, since ``getattr`` reaches any attribute of an allowed object.
So instead of loosening the check, :class:`PlainCheckpointHook` converts the
message hub and meta information to plain data before a checkpoint is written
and back after one is read.

Writing. MMEngine writes files with a plain ``open(path, 'wb')``: a crash in
the middle leaves a truncated checkpoint, or an empty ``last_checkpoint``
that ``--resume`` then follows. :func:`atomic_write` writes a temporary file
in the same folder, fsyncs it and renames it over the target (atomic on
POSIX and Windows), so a reader sees the old file or the new one, never part
of one. :class:`AtomicLocalBackend` makes MMEngine's local file backend (which
``save_checkpoint`` uses) write that way, and mmfusion's ``CheckpointHook``
also writes ``last_checkpoint`` atomically and deletes outdated checkpoints
only after the new one is complete.
"""
import errno
import os
import os.path as osp
import pickle
import re
import shutil
import uuid
from pathlib import Path
from typing import Any, List, Optional, Union

import numpy as np
import torch
from mmengine.dist import is_main_process
from mmengine.fileio import LocalBackend, register_backend
from mmengine.hooks import CheckpointHook as MMEngineCheckpointHook
from mmengine.hooks import Hook
from mmengine.runner.checkpoint import CheckpointLoader

from mmfusion.errors import CheckpointError, CheckpointWriteError, UnsafeCheckpointError
from mmfusion.registry import HOOKS

_BUFFER_TAG = '__history_buffer__'
CONVERT_COMMAND = 'python tools/misc/convert_checkpoint.py {src} {dst} --trusted'


# ---------------------------------------------------------------------------
# Loading


def checkpoint_safe_globals() -> List[object]:
    """The plain-data numpy types allowed beyond torch's defaults."""
    dtype_classes = [type(np.dtype(t)) for t in
                     (np.float64, np.float32, np.float16, np.int64, np.int32,
                      np.int16, np.int8, np.uint8, np.bool_)]
    return [np.ndarray, np.dtype, np._core.multiarray._reconstruct,
            np._core.multiarray.scalar, *dtype_classes]


def _refused_global(message: str) -> str:
    """The global torch's weights-only unpickler refused, from its message."""
    match = re.search(r'GLOBAL ([\w.]+)', message)
    return match.group(1) if match else 'an object that is not plain data'


def _first_sentence(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else ''
    return text.split('. ')[0][:200]


def load_checkpoint_file(filename: Union[str, Path],
                         map_location: Optional[Union[str, torch.device]] = None) -> Any:
    """Load a checkpoint without running any code from it.

    Args:
        filename: a local ``.pth`` file.
        map_location: as for ``torch.load``.

    Returns:
        What was saved (for MMEngine checkpoints a dict with ``state_dict``,
        ``meta``, ``optimizer`` ...).

    Raises:
        UnsafeCheckpointError: the file holds a type outside the allow-list;
            the message names it and the command that converts a trusted file.
        CheckpointError: the file is missing, truncated or not a checkpoint.
    """
    filename = osp.expanduser(str(filename))
    if not osp.isfile(filename):
        raise CheckpointError(f'checkpoint file not found: {filename}')
    with open(filename, 'rb') as f:
        head = f.read(4)
    # torch writes a zip archive (PK..); old files are a bare pickle (0x80, protocol)
    if not (head.startswith(b'PK') or head[:1] == b'\x80'):
        raise CheckpointError(
            f'cannot read checkpoint {filename} ({osp.getsize(filename)} bytes): it is not a '
            'PyTorch checkpoint (neither a zip archive nor a pickle); check the argument order '
            '(CONFIG first, then CHECKPOINT)')
    try:
        with torch.serialization.safe_globals(checkpoint_safe_globals()):
            return torch.load(filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        refused = _refused_global(str(e))
        command = CONVERT_COMMAND.format(src=filename, dst=filename[:-4] + '_plain.pth'
                                         if filename.endswith('.pth') else filename + '.plain')
        raise UnsafeCheckpointError(
            f'refused to load checkpoint {filename}: it contains {refused}, which is not '
            'on the allow-list of checkpoint types (tensors, numbers, strings, containers, '
            'numpy arrays), and unpickling it could run code from the file. Only if you '
            f'trust where the file came from, convert it once with: {command}') from None
    except (RuntimeError, EOFError, KeyError, ValueError, IndexError, AttributeError,
            TypeError) as e:
        # torch reports a damaged zip archive or a non-checkpoint file in these
        raise CheckpointError(
            f'cannot read checkpoint {filename} ({osp.getsize(filename)} bytes): not a '
            f'complete PyTorch checkpoint ({type(e).__name__}: {_first_sentence(e)}); '
            'it may be truncated or not a checkpoint at all') from None


def _load_local(filename: str, map_location=None) -> Any:
    return load_checkpoint_file(filename, map_location)


# ---------------------------------------------------------------------------
# Atomic writing


def atomic_write(path: Union[str, Path], data: Union[bytes, str],
                 encoding: str = 'utf-8') -> None:
    """Write ``data`` to ``path`` so that a crash leaves the old file or the new one.

    The data goes to a temporary file beside ``path``, is flushed to disk
    (fsync) and renamed over ``path``; the folder is fsynced so the rename
    itself is durable. The temporary file is removed if writing fails.
    """
    path = str(path)
    folder = osp.dirname(osp.abspath(path))
    if isinstance(data, str):
        data = data.encode(encoding)
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:  # e.g. a file where the folder should be
        error = CheckpointWriteError(f'cannot write {path}: {exc.strerror or exc}')
        error.errno = exc.errno
        raise error from exc
    # a unique name in the same folder: rename is atomic only within a filesystem
    tmp = osp.join(folder, f'.{osp.basename(path)}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp')
    try:
        with open(tmp, 'xb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        # the partial temporary file goes; ``path`` itself was never opened
        if osp.exists(tmp):
            os.remove(tmp)
        if isinstance(exc, OSError):
            raise write_error(path, len(data), exc) from exc
        raise
    if hasattr(os, 'O_DIRECTORY'):  # POSIX: make the rename durable too
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _display_path(path: str) -> str:
    """``path`` relative to the current folder when it lies inside it."""
    rel = osp.relpath(path) if osp.isabs(path) else path
    return path if rel.startswith('..') else rel


def _size(num_bytes: float) -> str:
    for unit in ('bytes', 'KiB', 'MiB', 'GiB'):
        if num_bytes < 1024 or unit == 'GiB':
            return f'{num_bytes:.0f} {unit}' if unit == 'bytes' else f'{num_bytes:.1f} {unit}'
        num_bytes /= 1024
    return f'{num_bytes:.1f} TiB'  # not reached


def write_error(path: str, size: int, exc: OSError) -> CheckpointWriteError:
    """A :class:`CheckpointWriteError` for a failed :func:`atomic_write`:
    names the file, the reason, the bytes to write and the free space."""
    folder = osp.dirname(osp.abspath(path))
    try:
        free = f'{_size(shutil.disk_usage(folder).free)} free on its disk'
    except OSError:
        free = 'free space unknown'
    reason = exc.strerror or type(exc).__name__
    hint = ''
    if exc.errno == errno.EFBIG:
        hint = ' (a limit on the size of files this process may write, e.g. ulimit -f)'
    elif exc.errno == errno.EDQUOT:
        hint = ' (a disk quota)'
    error = CheckpointWriteError(
        f'cannot write {_display_path(path)} ({_size(size)}): {reason}{hint}; {free}. '
        'The previous checkpoints and last_checkpoint are unchanged: make room, then '
        'continue with tools/train.py CONFIG --resume')
    error.errno = exc.errno  # still an OSError for code that checks the errno
    return error


class AtomicLocalBackend(LocalBackend):
    """MMEngine's local file backend, writing through :func:`atomic_write`."""

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        atomic_write(filepath, obj)

    def put_text(self, obj: str, filepath: Union[str, Path], encoding: str = 'utf-8') -> None:
        atomic_write(filepath, obj, encoding=encoding)


def use_safe_checkpoint_io() -> None:
    """Make MMEngine load local checkpoints through :func:`load_checkpoint_file`
    and write local files through :class:`AtomicLocalBackend`. Idempotent."""
    CheckpointLoader.register_scheme(prefixes='', loader=_load_local, force=True)
    register_backend('local', AtomicLocalBackend, force=True, prefixes='')


# ---------------------------------------------------------------------------
# Hooks


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
        # MMEngine stores the config text (meta['cfg']) but not its file; the
        # file lets a checkpoint that does not fit a model say where it is from
        filename = getattr(getattr(runner, 'cfg', None), 'filename', None)
        if filename and isinstance(checkpoint.get('meta'), dict):
            checkpoint['meta'].setdefault('config_file', _display_path(filename))
        for key in ('meta', 'message_hub'):
            if key in checkpoint:
                checkpoint[key] = to_plain(checkpoint[key])

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if 'message_hub' in checkpoint:
            checkpoint['message_hub'] = from_plain(checkpoint['message_hub'])


@HOOKS.register_module()
class CheckpointHook(MMEngineCheckpointHook):
    """MMEngine's ``CheckpointHook`` that never leaves a dangling ``last_checkpoint``.

    Registered under MMEngine's name, so configs keep writing
    ``dict(type='CheckpointHook', ...)``; same arguments. MMEngine deletes the
    oldest kept checkpoint *before* writing the new one and writes
    ``last_checkpoint`` with a plain ``open``: a crash in between leaves
    ``last_checkpoint`` naming a deleted or half-written file (certain with
    ``max_keep_ckpts=1``). Here the new checkpoint is written (atomically,
    through :class:`AtomicLocalBackend`), then ``last_checkpoint`` is
    replaced atomically, and only then are outdated checkpoints deleted.
    Temporary files that a crash left behind are removed when training
    (re)starts.

    It also keeps the epoch and iteration it saves at in the checkpoint's
    ``meta`` under MMEngine's ``FlexibleRunner`` (see
    :meth:`before_save_checkpoint`).
    """

    _saving_meta = None

    def before_train(self, runner) -> None:
        super().before_train(runner)
        if is_main_process() and osp.isdir(self.out_dir):
            # temporary files of writes that a crash interrupted
            for name in os.listdir(self.out_dir):
                if name.startswith('.') and name.endswith('.tmp') and '.pth.' in name:
                    os.remove(osp.join(self.out_dir, name))
                    runner.logger.info(f'removed {name}, left by an interrupted checkpoint write')

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        # MMEngine's Runner keeps the epoch and iteration this hook passes in
        # `meta`; its FlexibleRunner overwrites them with `runner.epoch + 1`.
        # After a new best score the latest checkpoint is written again, after
        # validation, when `runner.epoch` already counts the finished epoch:
        # under the FlexibleRunner epoch_1 would then say 2, and --resume
        # would skip an epoch. Put the hook's values back.
        if self._saving_meta is not None and isinstance(checkpoint.get('meta'), dict):
            checkpoint['meta'].update(self._saving_meta)

    def _save_checkpoint_with_step(self, runner, step: int, meta: dict) -> None:
        outdated = []
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids
                                             and self.keep_ckpt_ids[-1] == step):
            # the step may already be kept: the latest and the best checkpoint
            # can be written for the same epoch
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                outdated.append(self.keep_ckpt_ids.popleft())
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))

        ckpt_filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir, ckpt_filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        # what MMEngine's _save_checkpoint passes; not `meta` itself, which
        # the FlexibleRunner's save of the best checkpoint may have changed
        self._saving_meta = (dict(epoch=step, iter=runner.iter) if self.by_epoch
                             else dict(epoch=runner.epoch, iter=step))
        try:
            runner.save_checkpoint(
                self.out_dir, ckpt_filename, self.file_client_args,
                save_optimizer=self.save_optimizer,
                save_param_scheduler=self.save_param_scheduler,
                meta=meta, by_epoch=self.by_epoch, backend_args=self.backend_args, **self.args)
        finally:
            self._saving_meta = None
        if not is_main_process():
            return
        atomic_write(osp.join(runner.work_dir, 'last_checkpoint'), self.last_ckpt)
        for old_step in outdated:
            path = self.file_backend.join_path(self.out_dir, self.filename_tmpl.format(old_step))
            if self.file_backend.isfile(path):
                self.file_backend.remove(path)
            elif self.file_backend.isdir(path):  # DeepSpeed saves folders
                self.file_backend.rmtree(path)
