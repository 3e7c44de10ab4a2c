"""Config preparation shared by the command-line tools.

Every tool reads its config through :func:`read_tool_config` (the tools that
train or evaluate through :func:`load_tool_config`, which adds the work dir
and the launcher), so that they all

* report a missing, unreadable or broken config file as one
  :class:`~mmfusion.errors.ConfigError` naming the file (and the line of a
  syntax error) instead of MMEngine's traceback;
* refuse a ``--cfg-options`` key that would change nothing
  (:func:`check_overrides`): a top-level variable such as ``data_root`` was
  substituted into the components when the config was read, so overriding
  it afterwards silently leaves the run as it was;
* move a dataset with one option, ``--data-root DIR`` (:func:`set_data_root`).
"""
import inspect
import os
import os.path as osp
import sys
import traceback
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from mmengine.config import Config
from mmengine.logging import print_log

from mmfusion.errors import ConfigError

from .config_errors import close_matches, format_key_path, iter_config_dicts
from .config_vars import config_files, substitution_paths
from .dist import check_launcher, distributed_model_wrapper_cfg, init_distributed

CONFIG_SUFFIXES = ('.py', '.json', '.yaml', '.yml')

# Top-level keys something reads after the config is loaded, besides the
# arguments of ``Runner.__init__`` (found from its signature in read_keys()):
# keys MMEngine's Runner reads from ``runner.cfg`` directly, keys of the
# config machinery, and mmfusion's own.
RUNNER_CFG_KEYS = ('model_wrapper_cfg', 'compile', 'activation_checkpointing',
                   'efficient_conv_bn_eval', 'find_unused_parameters', 'sync_bn', 'strategy')
CONFIG_MACHINERY_KEYS = ('_base_', 'custom_imports', 'default_scope')


def warn(message: str) -> None:
    """Print ``mmfusion: warning: <message>`` on stderr.

    Not the logger: the runner's logger does not exist yet, and MMEngine's
    default one writes to stdout, which ``print_config.py --json`` keeps for
    the config alone.
    """
    print(f'mmfusion: warning: {message}', file=sys.stderr)


def read_keys(extra: Iterable[str] = ()) -> frozenset:
    """The top-level config keys whose override takes effect.

    Everything ``Runner.from_cfg`` hands to ``Runner.__init__`` (``model``,
    ``work_dir``, the data loaders, ``train_cfg``, ``optim_wrapper``, the
    hooks, ``env_cfg``, ``randomness``, ``visualizer``, ...), what the runner
    reads from its config later (``model_wrapper_cfg``, ``compile``, ...),
    ``custom_imports`` and ``default_scope``, plus ``extra`` (keys a tool
    reads itself).
    """
    from mmengine.runner import Runner

    params = inspect.signature(Runner.__init__).parameters
    return frozenset(p for p in params if p != 'self') | frozenset(RUNNER_CFG_KEYS) \
        | frozenset(CONFIG_MACHINERY_KEYS) | frozenset(extra)


# --------------------------------------------------------------------------
# Reading a config file


def _config_frame(exc: BaseException, files: Sequence[str]) -> Optional[traceback.FrameSummary]:
    """The innermost frame of ``exc``'s traceback that runs a config file:
    MMEngine compiles a config with its real file name, so a mistake in
    the config's own code (a misspelt variable) shows up as one."""
    wanted = {osp.abspath(f) for f in files}
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if osp.abspath(f.filename) in wanted]
    return frames[-1] if frames else None


def _syntax_error(path: str) -> Optional[Tuple[str, SyntaxError]]:
    """``(file, error)`` of the first file in ``path``'s ``_base_`` chain
    that is not valid Python, or None."""
    for filename in config_files(path):
        try:
            with open(filename, encoding='utf-8') as f:
                compile(f.read(), filename, 'exec', dont_inherit=True)
        except SyntaxError as exc:
            return filename, exc
    return None


def _describe_syntax_error(filename: str, exc: SyntaxError) -> str:
    where = f'{filename}, line {exc.lineno}' if exc.lineno else filename
    source = (exc.text or '').strip()
    shown = f': {source}' if source else ''
    return f'{where}: invalid Python syntax ({exc.msg}){shown}'


def read_config(path: str) -> Config:
    """``Config.fromfile(path)``, with the ways a config file can be unusable
    reported as one :class:`ConfigError` each.

    Raises:
        ConfigError: the file (or one of its ``_base_`` files) does not
            exist, is a folder, cannot be read, has an unsupported suffix, is
            not valid Python (file and line), or raises an error when run
            (file, line and the error).
    """
    if not osp.exists(path):
        folder = osp.dirname(path) or '.'
        hint = ''
        if osp.isdir(folder):
            names = [n for n in os.listdir(folder) if n.endswith(CONFIG_SUFFIXES)]
            matches = close_matches(osp.basename(path), names)
            if matches:
                hint = ' Did you mean ' + ' or '.join(
                    repr(osp.join(osp.dirname(path), m)) for m in matches) + '?'
        else:
            hint = f' The folder {folder} does not exist either.'
        raise ConfigError(f'config file not found: {path}.{hint}')
    if osp.isdir(path):
        raise ConfigError(f'{path} is a folder; expected a config file (.py, .json or .yaml)')
    if not path.endswith(CONFIG_SUFFIXES):
        raise ConfigError(f'{path}: not a config file; expected a file ending in '
                          f'{", ".join(CONFIG_SUFFIXES)}')
    try:
        with open(path, 'rb'):
            pass
    except OSError as exc:
        raise ConfigError(f'cannot read config file {path}: {exc.strerror or exc}') from exc
    try:
        return Config.fromfile(path)
    except SyntaxError as exc:
        found = _syntax_error(path) if path.endswith('.py') else None
        if found is None:  # a YAML/JSON file, or a base that could not be located
            raise ConfigError(f'{path}: invalid syntax ({exc})') from exc
        raise ConfigError(_describe_syntax_error(*found)) from exc
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        # a _base_ file that is missing or unreadable (the config itself was checked above)
        missing = osp.normpath(exc.filename) if exc.filename else str(exc)
        raise ConfigError(f'{path}: cannot read its base config {missing} '
                          f'({exc.strerror or type(exc).__name__}); check the _base_ '
                          'entries') from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f'{path} (or one of its _base_ files) is not UTF-8 text: '
                          f'{exc}') from exc
    except Exception as exc:
        if not path.endswith('.py'):  # MMEngine's YAML and JSON parsers, one line of their text
            detail = ' '.join(str(exc).split())
            raise ConfigError(f'{path}: not a valid {osp.splitext(path)[1][1:].upper()} config '
                              f'({type(exc).__name__}: {detail})') from exc
        frame = _config_frame(exc, config_files(path))
        if frame is None:
            raise  # not from the config's own code: keep the traceback
        raise ConfigError(f'{frame.filename}, line {frame.lineno}: the config raised '
                          f'{type(exc).__name__}: {exc}'
                          + (f' (in: {frame.line.strip()})' if frame.line else '')) from exc


# --------------------------------------------------------------------------
# Overrides that would change nothing


def _format_value(value: Any) -> str:
    """A value as it would be written after ``--cfg-options key=``."""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        inner = ','.join(_format_value(v) for v in value)
        return f'[{inner}]' if isinstance(value, list) else f'({inner})'
    return str(value)


def check_overrides(cfg: Config, cfg_options: Dict[str, Any],
                    extra_read_keys: Iterable[str] = (),
                    data_root_option: Optional[str] = '--data-root') -> None:
    """Refuse ``--cfg-options`` keys that no component would read.

    Call it before merging the options. The rule, per key (its part before
    the first dot decides):

    * a key that something reads (:func:`read_keys`: ``model``, the data
      loaders, ``train_cfg``, ...; any key below them) is accepted;
    * an existing top-level key that nothing reads and whose value was
      substituted into other keys when the config was read (a variable:
      ``data_root``, ``dataset_type``, ``train_pipeline``) is refused, naming
      the keys to override instead;
    * any other key nothing reads (a new top-level key, or an unused
      variable) gets a warning: a custom hook could read it from
      ``runner.cfg``, but most likely it is misspelt.

    Raises:
        ConfigError: naming every refused key and what to override instead;
            for ``data_root``, the ``data_root_option`` that moves a dataset.
    """
    readable = read_keys(extra_read_keys)
    problems: List[str] = []
    for key, value in cfg_options.items():
        top, _, rest = key.partition('.')
        if top in readable:
            continue
        if top not in cfg:
            hint = close_matches(top, sorted(readable | set(cfg.keys())))
            guess = f' Did you mean {hint[0]!r}?' if hint else ''
            warn(f'--cfg-options {key}: the config has no top-level key {top!r} and no '
                 f'component reads one, so this override probably changes nothing.{guess}')
            continue
        paths = substitution_paths(cfg, top, keep=readable)
        if not paths:
            warn(f'--cfg-options {key}: {top!r} is a top-level variable of the config '
                 'that no component reads, so this override probably changes nothing')
            continue
        targets = [format_key_path(p) + (f'.{rest}' if rest else '') for p in paths]
        shown = _format_value(value)
        old = repr(cfg[top])
        old = f'its value {old}' if len(old) <= 60 else 'its value'  # a pipeline is too long
        message = (f'--cfg-options {key}={shown} changes nothing: {top!r} is a variable of '
                   f'the config, and {old} was already written into '
                   f'{_join(targets)} when the config was read. ')
        if top == 'data_root' and not rest and data_root_option:
            message += (f'To move the dataset, use {data_root_option} {shown} (it replaces the '
                        'data root in every dataset of the config); to change one place, ')
        else:
            message += 'Instead, '
        message += 'override ' + ('it there' if len(targets) == 1 else 'them there') + \
            ': --cfg-options ' + ' '.join(f'{t}={shown}' for t in targets)
        problems.append(message)
    if problems:
        raise ConfigError('; '.join(problems))


def _join(items: Sequence[str]) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else ', '.join(items[:-1]) + ' and ' + items[-1]


# --------------------------------------------------------------------------
# Moving the data


def _same_path(a: Any, b: Any) -> bool:
    return isinstance(a, str) and isinstance(b, str) \
        and osp.normpath(osp.expanduser(a)) == osp.normpath(osp.expanduser(b))


def set_data_root(cfg: Config, data_root: str) -> List[str]:
    """Point every dataset config of ``cfg`` at ``data_root``.

    The config's data root is its top-level ``data_root`` variable; every
    ``data_root`` entry holding that value is replaced, wherever it is: the
    train/val/test data loaders, datasets wrapped in ``RepeatDataset`` or
    ``ConcatDataset``, and vocabulary sources such as
    ``answer_vocab=dict(dataset=...)``. Other paths of those datasets that
    start with the old root (an absolute ``ann_file``) move with it. A
    config without the variable may have one data root, used by all its
    datasets. The top-level ``data_root`` is set too, so the work dir's
    config says what was used.

    Returns:
        The key paths replaced, e.g. ``['train_dataloader.dataset.data_root', ...]``.

    Raises:
        ConfigError: when no dataset has a data root to replace, or, without
            the variable, the datasets use different roots.
    """
    root = cfg._cfg_dict
    datasets = [(path, node) for path, node in iter_config_dicts(root)
                if path and isinstance(node.get('data_root'), str)]
    old = cfg.get('data_root')
    if not isinstance(old, str):
        roots = sorted({osp.normpath(node['data_root']) for _, node in datasets})
        if len(roots) > 1:
            where = '; '.join(f'{format_key_path(p + ("data_root",))}={n["data_root"]!r}'
                              for p, n in datasets)
            raise ConfigError(f'--data-root {data_root}: the config has no top-level data_root '
                              f'and its datasets use different roots ({where}); set each with '
                              '--cfg-options KEY=DIR')
        old = roots[0] if roots else None
    replaced: List[str] = []
    prefix = None if old is None else osp.normpath(old) + os.sep
    for path, node in datasets:
        if not _same_path(node['data_root'], old):
            continue
        for key, value in list(node.items()):
            if key == 'data_root':
                node[key] = data_root
                replaced.append(format_key_path(path + (key,)))
            elif isinstance(value, str) and prefix and osp.normpath(value).startswith(prefix):
                node[key] = osp.join(data_root, osp.normpath(value)[len(prefix):])
                replaced.append(format_key_path(path + (key,)))
    if not replaced:
        raise ConfigError(f'--data-root {data_root}: no dataset in {cfg.filename} has a data_root '
                          + (f'equal to the config\'s data_root {old!r}' if old else '')
                          + ' to replace; set the dataset paths with --cfg-options')
    others = [format_key_path(p + ('data_root',)) for p, n in datasets
              if not _same_path(n['data_root'], data_root)]
    if others:
        warn(f'--data-root {data_root}: left {", ".join(others)} as they are (a root '
             f'other than the config\'s data_root {old!r})')
    if 'data_root' in cfg:
        cfg.data_root = data_root
    return replaced


# --------------------------------------------------------------------------
# The tools' entry points


def read_tool_config(config: str, cfg_options: Optional[dict] = None,
                     data_root: Optional[str] = None,
                     extra_read_keys: Iterable[str] = ()) -> Config:
    """Read a config as every tool does: :func:`read_config`, then
    ``--cfg-options`` (checked with :func:`check_overrides` first, then
    merged), then ``--data-root`` (:func:`set_data_root`).

    Args:
        config: the config file.
        cfg_options: ``--cfg-options`` as MMEngine's ``DictAction`` parses them.
        data_root: ``--data-root``: where the datasets are.
        extra_read_keys: top-level keys the calling tool reads itself, so
            that overriding them is accepted.
    """
    cfg = read_config(config)
    if cfg_options:
        check_overrides(cfg, cfg_options, extra_read_keys)
        cfg.merge_from_dict(cfg_options)
        if any(k.split('.')[0] == 'custom_imports' for k in cfg_options):
            # Config.fromfile imported the file's custom_imports while reading it;
            # import the overridden ones too, or the override would change nothing
            from mmengine.utils import import_modules_from_strings
            import_modules_from_strings(**cfg.custom_imports)
    if data_root is not None:
        replaced = set_data_root(cfg, data_root)
        print_log(f'data root: {data_root} (in {", ".join(replaced)})', logger='current')
    return cfg


def load_tool_config(config: str, work_dir: Optional[str] = None,
                     cfg_options: Optional[dict] = None, launcher: str = 'none',
                     data_root: Optional[str] = None,
                     extra_read_keys: Iterable[str] = ()) -> Config:
    """Read a config as ``tools/train.py`` and ``tools/test.py`` do.

    :func:`read_tool_config` (clear errors for a bad file, refused
    overrides, ``--data-root``), then sets the launcher and the work dir
    (given, or the config's, or ``./work_dirs/<config name>``), and for a
    distributed launcher starts the process group (gloo on CPU, nccl on GPU)
    and the matching DDP settings. ``env_cfg.torch_num_threads`` sets
    PyTorch's intra-op threads.

    Raises:
        ConfigError: see :func:`read_tool_config`.
        LauncherError: an unknown launcher, or one started without the
            environment variables it needs.
    """
    check_launcher(launcher)
    cfg = read_tool_config(config, cfg_options, data_root, extra_read_keys)
    cfg.launcher = launcher
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(config))[0])
    threads = (cfg.get('env_cfg') or {}).get('torch_num_threads')
    if threads:
        # MMEngine's env_cfg has no thread setting; a small model on few cores
        # can train faster with one intra-op thread and a data-loader worker
        import torch
        torch.set_num_threads(int(threads))
    if launcher != 'none':
        # MMEngine's key for the collective timeout, in seconds: a rank that
        # hangs fails the others after this long instead of blocking them forever
        timeout = (cfg.get('env_cfg') or {}).get('dist_cfg', {}).get('timeout', 1800)
        backend = init_distributed(launcher, timeout_s=int(timeout))
        # recorded so that the config dumped into the work dir says what was used
        cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})['backend'] = backend
        cfg.model_wrapper_cfg = distributed_model_wrapper_cfg(cfg.get('model_wrapper_cfg'))
    return cfg


# strategies whose optional library is not a dependency of mmfusion: type -> (module, hint)
STRATEGY_EXTRAS = {
    'DeepSpeedStrategy': ('deepspeed', 'pip install "mmfusion[deepspeed]" (or pip install '
                          '"deepspeed<0.19.7"; see https://www.deepspeed.ai/getting-started/)'),
    'ColossalAIStrategy': ('colossalai', 'pip install colossalai'),
}


def prepare_strategy(cfg: Config) -> bool:
    """Check and complete ``cfg.strategy`` for MMEngine's ``FlexibleRunner``.

    Does nothing without a ``strategy`` key. Otherwise: a strategy whose
    library is missing (``deepspeed``) is a :class:`ConfigError` with the
    install hint, before anything is built; ``DDPStrategy`` gets
    ``device_ids=None`` on a CPU-only machine (as the Runner's DDP does);
    the type is looked up in mmfusion's scope first (``FSDP2Strategy``),
    since ``FlexibleRunner`` builds its strategy before it sets the scope.

    Returns:
        Whether the run writes checkpoints as one ``.pth`` file each, which
        the checkpoint comparison of ``load_from``/resume can read (a
        sharded ``FSDP2Strategy`` checkpoint is a folder, checked by
        ``torch.distributed.checkpoint`` itself; a ``DeepSpeedStrategy`` one
        is a folder read by DeepSpeed's engine).
    """
    strategy = cfg.get('strategy')
    if not strategy:
        return True
    if not isinstance(strategy, dict) or 'type' not in strategy:
        raise ConfigError(f"strategy must be dict(type='FSDP2Strategy' | 'DDPStrategy' | "
                          f"'DeepSpeedStrategy', ...), got {strategy!r}")
    kind = strategy['type'] if isinstance(strategy['type'], str) else strategy['type'].__name__
    name = kind.split('.')[-1]
    if name in STRATEGY_EXTRAS:
        module, hint = STRATEGY_EXTRAS[name]
        import importlib.util
        if importlib.util.find_spec(module) is None:
            raise ConfigError(f'strategy={name} needs the optional package {module!r}, which is '
                              f'not installed: {hint}')
    from mmfusion.registry import STRATEGIES
    if isinstance(strategy['type'], str) and '.' not in kind:
        if STRATEGIES.get(kind) is None:
            raise ConfigError(f'strategy.type={kind!r} is not a registered strategy (mmfusion: '
                              f'{sorted(STRATEGIES.module_dict)}; MMEngine: SingleDeviceStrategy, '
                              'DDPStrategy, DeepSpeedStrategy, FSDPStrategy)')
        if kind in STRATEGIES.module_dict:
            strategy['type'] = f'mmfusion.{kind}'
    if name == 'DDPStrategy':
        strategy['model_wrapper'] = distributed_model_wrapper_cfg(strategy.get('model_wrapper'))
    if name == 'DeepSpeedStrategy':
        _check_deepspeed_version()
        _prepare_deepspeed(cfg)
        return False  # DeepSpeed's folders: its engine checks the model keys itself
    return not (name == 'FSDP2Strategy' and strategy.get('state_dict_type', 'sharded') == 'sharded')


def _check_deepspeed_version() -> None:
    # MMEngine's DeepSpeedStrategy (0.10.x) imports DeepSpeed's 1-bit
    # optimizers from deepspeed.runtime.fp16.onebit, which 0.19.7 removed
    import importlib.util
    if importlib.util.find_spec('deepspeed.runtime.fp16.onebit') is None:
        from importlib.metadata import version
        raise ConfigError(f"strategy=DeepSpeedStrategy: MMEngine's DeepSpeed strategy needs "
                          f"deepspeed < 0.19.7 (it imports deepspeed.runtime.fp16.onebit), but "
                          f"deepspeed {version('deepspeed')} is installed: "
                          f'pip install "deepspeed<0.19.7"')


def _prepare_deepspeed(cfg: Config) -> None:
    """Give DeepSpeed its batch size and turn the config's ``OptimWrapper``
    into MMEngine's ``DeepSpeedOptimWrapper``.

    The ``FlexibleRunner`` passes the per-rank batch size only to a strategy
    typed exactly ``'DeepSpeedStrategy'``, not to mmfusion's (scoped) one.

    DeepSpeed clips and accumulates gradients itself, from its own config:
    ``clip_grad=dict(max_norm=M)`` becomes ``strategy.gradient_clipping=M`` and
    ``accumulative_counts=N`` ``strategy.gradient_accumulation_steps=N``, so a
    config trains under DeepSpeed by adding the ``strategy`` line alone. Mixed
    precision is DeepSpeed's too (``strategy.bf16=dict(enabled=True)``): an
    ``AmpOptimWrapper`` / ``AutocastOptimWrapper`` is refused with that hint.
    """
    loader = cfg.get('train_dataloader')
    cfg.strategy.setdefault('train_micro_batch_size_per_gpu',
                            loader.get('batch_size', 1) if isinstance(loader, dict) else 1)
    wrapper = cfg.get('optim_wrapper')
    if not isinstance(wrapper, dict):
        return
    kind = wrapper.get('type', 'OptimWrapper')
    kind = kind if isinstance(kind, str) else kind.__name__
    if kind.split('.')[-1] == 'DeepSpeedOptimWrapper':
        return
    if kind.split('.')[-1] != 'OptimWrapper':
        raise ConfigError(f'strategy=DeepSpeedStrategy: optim_wrapper.type={kind!r} cannot be '
                          "used; DeepSpeed does mixed precision itself: use optim_wrapper.type="
                          "'OptimWrapper' and strategy.bf16=dict(enabled=True) (or strategy.fp16)")
    strategy = cfg.strategy
    clip = wrapper.pop('clip_grad', None)
    if clip:
        if set(clip) - {'max_norm', 'norm_type'} or clip.get('norm_type', 2) != 2:
            raise ConfigError(f'strategy=DeepSpeedStrategy: optim_wrapper.clip_grad={dict(clip)} '
                              'cannot be passed on; DeepSpeed clips the 2-norm only '
                              '(strategy.gradient_clipping=max_norm)')
        strategy.setdefault('gradient_clipping', float(clip['max_norm']))
    counts = wrapper.pop('accumulative_counts', None)
    if counts:
        strategy.setdefault('gradient_accumulation_steps', int(counts))
    wrapper['type'] = 'DeepSpeedOptimWrapper'


def add_data_root_argument(parser: Any) -> None:
    """Add the documented ``--data-root DIR`` option to a tool's argparse parser."""
    parser.add_argument('--data-root', metavar='DIR',
                        help="where the dataset is: replaces the config's data root in every "
                        'dataset it configures (train/val/test loaders, wrapped datasets, '
                        'vocabulary sources); --cfg-options data_root=DIR would change nothing')


__all__ = ['add_data_root_argument', 'check_overrides', 'load_tool_config', 'prepare_strategy',
           'read_config', 'read_keys', 'read_tool_config', 'set_data_root']
