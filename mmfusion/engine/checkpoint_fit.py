"""Does a checkpoint fit the model? One comparison, used by every loader.

MMEngine (like mmdet and mmpretrain) loads ``load_from`` and the test
checkpoint with ``strict=False``: a checkpoint of another model loads "with
warnings", the unmatched layers stay random, and the evaluation writes a
plausible-looking wrong number. Here a checkpoint is compared with the model
first (:func:`compare_state_dict`: missing keys, unexpected keys, tensors of
another shape) and then

* where the weights must be the checkpoint's (``tools/test.py``,
  ``tools/infer.py`` / :func:`mmfusion.apis.init_model`, ``--resume``,
  export), anything that does not fit is a
  :class:`~mmfusion.errors.CheckpointMismatchError` naming the checkpoint,
  the config, the config the checkpoint was trained with and a table of the
  differences (:func:`load_checkpoint_strict`, and
  :class:`CheckpointFitHook` with ``strict=True`` inside the Runner);
* where a partial match is normal (fine-tuning from ``load_from`` or
  ``init_cfg=dict(type='Pretrained', checkpoint=...)``: a new head), one
  summary table says what was loaded, what is newly initialised and what was
  ignored (:func:`load_state_dict_leniently`), instead of MMEngine's wall of
  warnings. ``load_from_strict=True`` (a top-level config key) or
  ``init_cfg=dict(type='Pretrained', ..., strict=True)`` makes them strict.

Checkpoints written by mmfusion record the config file they were trained
with (``meta['config_file']``, besides MMEngine's ``meta['cfg']`` text), so
the error can say which config a checkpoint belongs to.
"""
import os.path as osp
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import torch
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.model.weight_init import PretrainedInit, update_init_info
from mmengine.runner.checkpoint import _load_checkpoint_to_model, load_state_dict
from terminaltables import AsciiTable

from mmfusion.errors import CheckpointError, CheckpointMismatchError
from mmfusion.registry import HOOKS, WEIGHT_INITIALIZERS

from .checkpoint import load_checkpoint_file

# MMEngine's default: DataParallel/DDP checkpoints prefix every key with 'module.'
MODULE_PREFIX = re.compile(r'^module\.')
# how many names of each kind a table shows
FIRST_N = 3
EXTRA_STATE = '_extra_state'


@dataclass
class CheckpointFit:
    """How a checkpoint's state dict matches a model's.

    ``loaded``: keys present in both with the same shape; ``missing``: model
    keys the checkpoint lacks (they would stay as initialised);
    ``unexpected``: checkpoint keys the model lacks (ignored);
    ``mismatched``: ``(key, checkpoint shape, model shape)`` of tensors
    present in both with different shapes.
    """
    loaded: List[str] = field(default_factory=list)
    missing: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)
    mismatched: List[Tuple[str, tuple, tuple]] = field(default_factory=list)

    @property
    def fits(self) -> bool:
        """Whether every model key is in the checkpoint with its shape, and nothing else."""
        return not (self.missing or self.unexpected or self.mismatched)

    def mismatch_table(self) -> str:
        """The differences, for an error: first few keys of each kind, with counts."""
        rows = [['problem', 'count', f'keys (first {FIRST_N})']]
        if self.missing:
            rows.append(['missing from the checkpoint', len(self.missing),
                         _first(self.missing)])
        if self.unexpected:
            rows.append(['not in the model', len(self.unexpected), _first(self.unexpected)])
        if self.mismatched:
            rows.append(['different shape', len(self.mismatched), _first(
                [f'{k}: checkpoint {_shape(a)}, model {_shape(b)}'
                 for k, a, b in self.mismatched])])
        rows.append(['fit (same key and shape)', len(self.loaded), ''])
        return AsciiTable(rows).table

    def summary_table(self, source: str) -> str:
        """What a lenient load did: loaded, newly initialised, ignored."""
        ignored = self.unexpected + [f'{k} (shape {_shape(a)}, model {_shape(b)})'
                                     for k, a, b in self.mismatched]
        new = self.missing + [k for k, _, _ in self.mismatched]
        rows = [['', 'count', f'keys (first {FIRST_N})'],
                ['loaded from the checkpoint', len(self.loaded), _first(self.loaded)],
                ['newly initialised', len(new), _first(new)],
                ['ignored (not in the model or another shape)', len(ignored), _first(ignored)]]
        return AsciiTable(rows, title=f'Weights from {source}').table


def _shape(shape: tuple) -> str:
    return '(' + ', '.join(str(s) for s in shape) + ')'


def _first(keys: List[str]) -> str:
    more = f'\n... and {len(keys) - FIRST_N} more' if len(keys) > FIRST_N else ''
    return '\n'.join(keys[:FIRST_N]) + more


def state_dict_of(checkpoint: Mapping) -> 'OrderedDict[str, Any]':
    """The model weights of a loaded checkpoint (its ``state_dict`` entry, or
    the checkpoint itself for a bare state dict), without DDP's ``module.``
    prefix, as MMEngine's loader strips it."""
    state = checkpoint.get('state_dict', checkpoint) if isinstance(checkpoint, Mapping) else None
    if not isinstance(state, Mapping):
        raise CheckpointError(f'the checkpoint holds no state dict (a {type(checkpoint).__name__}'
                              ' where a dict of tensors or a dict with "state_dict" was expected)')
    revised = OrderedDict((MODULE_PREFIX.sub('', k), v) for k, v in state.items())
    revised._metadata = getattr(state, '_metadata', OrderedDict())  # type: ignore[attr-defined]
    return revised


def compare_state_dict(model: torch.nn.Module, state: Mapping[str, Any]) -> CheckpointFit:
    """Compare ``state`` (keys as in ``model.state_dict()``) with ``model``.

    ``_extra_state`` entries (vocabularies stored by a module) are compared by
    key only: their encoded size is not a shape the model has.
    """
    own = model.state_dict()
    fit = CheckpointFit()
    for key, value in own.items():
        if key not in state:
            fit.missing.append(key)
            continue
        theirs = state[key]
        if (not key.endswith(EXTRA_STATE) and torch.is_tensor(value) and torch.is_tensor(theirs)
                and value.shape != theirs.shape):
            fit.mismatched.append((key, tuple(theirs.shape), tuple(value.shape)))
        else:
            fit.loaded.append(key)
    fit.unexpected = [key for key in state if key not in own]
    return fit


def trained_with(checkpoint: Any) -> Optional[str]:
    """The config a checkpoint was trained with, from its ``meta``: the file
    mmfusion records, or MMEngine's experiment name (config name + time)."""
    meta = checkpoint.get('meta') if isinstance(checkpoint, Mapping) else None
    if not isinstance(meta, Mapping):
        return None
    if meta.get('config_file'):
        return str(meta['config_file'])
    if meta.get('experiment_name'):
        return f'a config named like {meta["experiment_name"]} (name_time)'
    return None


def _display(path: str) -> str:
    """A path relative to the current folder when it is inside it."""
    rel = osp.relpath(path) if osp.isabs(path) else path
    return rel if not rel.startswith('..') else path


def mismatch_error(fit: CheckpointFit, checkpoint_path: str, config: Optional[str],
                   checkpoint: Any = None, what: str = 'model') -> CheckpointMismatchError:
    """The error for a checkpoint that does not fit: names the checkpoint,
    the config, the config the checkpoint came from, and the table."""
    origin = trained_with(checkpoint)
    origin_text = f' It was trained with {_display(origin)}.' if origin else ''
    counts = ', '.join(f'{n} {label}' for n, label in (
        (len(fit.missing), 'missing'), (len(fit.unexpected), 'unexpected'),
        (len(fit.mismatched), 'with another shape')) if n)
    of_config = f' of {_display(config)}' if config else ''
    return CheckpointMismatchError(
        f'checkpoint {checkpoint_path} does not fit the {what}{of_config} ({counts}; '
        f'{len(model_keys(fit))} model keys): loading it would leave part of the model '
        f'untrained, so nothing was loaded.{origin_text} Use the config the checkpoint was '
        'trained with, or a checkpoint trained with this config.\n' + fit.mismatch_table())


def model_keys(fit: CheckpointFit) -> List[str]:
    """Every key of the model compared in ``fit``."""
    return fit.loaded + fit.missing + [k for k, _, _ in fit.mismatched]


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if is_model_wrapper(model) else model


# ---------------------------------------------------------------------------
# Loaders


def load_checkpoint_strict(model: torch.nn.Module, filename: str, config: Optional[str] = None,
                           map_location: Union[str, torch.device, None] = 'cpu') -> dict:
    """Load ``filename`` into ``model`` only if it fits exactly.

    Args:
        model: the model (a DDP wrapper is unwrapped).
        filename: a local checkpoint, read weights-only.
        config: the config file the model was built from, for the message.
        map_location: as for ``torch.load``.

    Returns:
        The loaded checkpoint.

    Raises:
        CheckpointMismatchError: keys or shapes differ; nothing was loaded.
    """
    model = _unwrap(model)
    checkpoint = load_checkpoint_file(filename, map_location=map_location)
    fit = compare_state_dict(model, state_dict_of(checkpoint))
    if not fit.fits:
        raise mismatch_error(fit, filename, config, checkpoint)
    _load_checkpoint_to_model(model, checkpoint, strict=True)
    return checkpoint


def load_state_dict_leniently(module: torch.nn.Module, state: Mapping[str, Any],
                              source: str) -> CheckpointFit:
    """Load what fits of ``state`` into ``module`` and log one summary table.

    Keys the checkpoint lacks keep their initialised values; keys the module
    lacks and tensors of another shape are ignored. The state dict handed to
    MMEngine's loader is completed with the module's own tensors for the
    missing keys and stripped of the rest, so it matches exactly and
    MMEngine's per-key warnings do not repeat what the table says.
    """
    fit = compare_state_dict(module, state)
    print_log('\n' + fit.summary_table(source), logger='current')
    load_state_dict(module, complete_state(module, state, fit), strict=True)
    return fit


def complete_state(module: torch.nn.Module, state: Mapping[str, Any],
                   fit: CheckpointFit) -> 'OrderedDict[str, Any]':
    """``state`` limited to the keys that fit, plus the module's own values
    for the rest: loading it changes exactly the fitting weights."""
    own = module.state_dict()
    completed = OrderedDict((k, state[k] if k in fit.loaded else v) for k, v in own.items())
    completed._metadata = getattr(state, '_metadata', OrderedDict())  # type: ignore[attr-defined]
    return completed


# ---------------------------------------------------------------------------
# Inside MMEngine's Runner


def _runner_checkpoint_path(runner) -> str:
    """The file the runner is loading: ``load_from``, or with ``resume`` and
    no ``load_from`` the work dir's latest checkpoint."""
    from mmengine.runner import find_latest_checkpoint

    path = runner.cfg.get('load_from')
    if not path and runner.cfg.get('resume'):
        path = find_latest_checkpoint(runner.work_dir)
    return str(path or 'the checkpoint')


@HOOKS.register_module()
class CheckpointFitHook(Hook):
    """Check every checkpoint the Runner loads against its model.

    Args:
        strict: ``True`` (``tools/test.py``): a checkpoint that does not fit
            is a :class:`~mmfusion.errors.CheckpointMismatchError`. ``None``
            (``tools/train.py``): strict when resuming (``cfg.resume``) or
            when the config sets ``load_from_strict=True``; otherwise
            ``load_from`` loads what fits and logs one summary table.
            ``False``: always lenient.

    Runs in ``after_load_checkpoint``, which MMEngine calls between reading
    the file and loading it into the model (for ``load_from`` and resume
    alike), so a misfit stops the run before any weight changes.
    """
    priority = 'HIGH'  # after PlainCheckpointHook (HIGHEST), before anything else

    def __init__(self, strict: Optional[bool] = None) -> None:
        self.strict = strict

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        model = _unwrap(runner.model)
        state = state_dict_of(checkpoint)
        fit = compare_state_dict(model, state)
        strict = self.strict
        if strict is None:
            strict = bool(runner.cfg.get('resume')) or bool(runner.cfg.get('load_from_strict'))
        path = _runner_checkpoint_path(runner)
        if not fit.fits and strict:
            raise mismatch_error(fit, path, runner.cfg.filename, checkpoint)
        if fit.fits:
            return
        runner.logger.info('\n' + fit.summary_table(path))
        # MMEngine loads checkpoint['state_dict'] next (strict=False); hand it
        # exactly what fits so its per-key warnings do not repeat the table
        completed = complete_state(model, state, fit)
        if 'state_dict' in checkpoint:
            checkpoint['state_dict'] = completed
        else:
            checkpoint.clear()
            checkpoint.update(completed)


def checkpoint_fit_hook(cfg, strict: Optional[bool] = None) -> None:
    """Add :class:`CheckpointFitHook` to ``cfg.custom_hooks`` (once)."""
    hooks = [h for h in (cfg.get('custom_hooks') or []) if h.get('type') != 'CheckpointFitHook']
    cfg.custom_hooks = hooks + [dict(type='CheckpointFitHook', strict=strict)]


# ---------------------------------------------------------------------------
# init_cfg=dict(type='Pretrained', ...)


@WEIGHT_INITIALIZERS.register_module(name='Pretrained')
class FitPretrainedInit(PretrainedInit):
    """MMEngine's ``Pretrained`` initialiser with one summary table, or strict.

    Registered under MMEngine's name in mmfusion's scope, so
    ``init_cfg=dict(type='Pretrained', checkpoint=..., prefix=...)`` keeps
    working. Args as MMEngine's, plus ``strict``: ``True`` raises
    :class:`~mmfusion.errors.CheckpointMismatchError` when the (prefixed part
    of the) checkpoint does not fit the module.
    """

    def __init__(self, checkpoint: str, prefix: Optional[str] = None,
                 map_location: Union[str, None] = 'cpu', strict: bool = False) -> None:
        super().__init__(checkpoint, prefix=prefix, map_location=map_location)
        self.strict = strict

    def __call__(self, module: torch.nn.Module) -> None:
        from mmengine.runner.checkpoint import _load_checkpoint

        checkpoint = _load_checkpoint(self.checkpoint, map_location=self.map_location)
        state: Dict[str, Any] = state_dict_of(checkpoint)
        source = self.checkpoint
        if self.prefix is not None:
            prefix = self.prefix if self.prefix.endswith('.') else self.prefix + '.'
            state = OrderedDict((k[len(prefix):], v) for k, v in state.items()
                                if k.startswith(prefix))
            if not state:
                raise CheckpointError(f'init_cfg Pretrained: checkpoint {self.checkpoint} has '
                                      f'no key starting with {prefix!r} (prefix={self.prefix!r})')
            source = f'{self.checkpoint} [{prefix}*]'
        fit = compare_state_dict(module, state)
        if self.strict and not fit.fits:
            raise mismatch_error(fit, self.checkpoint, None, checkpoint,
                                 what=f'{type(module).__name__} (init_cfg Pretrained)')
        load_state_dict_leniently(module, state, source)
        if hasattr(module, '_params_init_info'):
            update_init_info(module, init_info=self._get_init_info())


__all__ = ['CheckpointFit', 'CheckpointFitHook', 'FitPretrainedInit', 'checkpoint_fit_hook',
           'compare_state_dict', 'complete_state', 'load_checkpoint_strict',
           'load_state_dict_leniently', 'mismatch_error', 'state_dict_of', 'trained_with']
