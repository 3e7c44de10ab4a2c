"""Config mistakes explained in config terms, and the tools' error reporting.

MMEngine reports a misspelled component or argument as it meets it while
building, e.g. ``KeyError: GMUFuson is not in the mmfusion::model registry``
or ``TypeError: MLBFusion.__init__() got an unexpected keyword argument
'out_dimm'``, without saying where in the config the name was written or what
was meant. :func:`explain_config_errors` wraps the building (the Runner, or
the inferencer's model and pipeline), turns exactly those errors into a
:class:`~mmfusion.errors.ConfigError` that names the config key, the
registry or class, and the closest valid names, and lets everything else
through unchanged. :func:`check_modalities` compares what the data pipelines
pack with what the model encodes before anything is built, and
:func:`run_main` is the command-line tools' entry point: it prints any
:class:`~mmfusion.errors.MMFusionError` as one line.
"""
import contextlib
import difflib
import inspect
import os
import re
import sys
from types import FrameType
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from mmengine.registry import Registry
from mmengine.registry import build_functions as mmengine_build_functions

from mmfusion.errors import ConfigError, MMFusionError

TRACEBACK_ENV = 'MMFUSION_TRACEBACK'

# MMEngine's wording (mmengine/registry/build_functions.py); the scope is
# left out by the param-scheduler and runner builders
_UNKNOWN_TYPE = re.compile(r"^(?P<type>\S+) is not in the (?:\S+::)?.+? registry\. ")
# CPython's wording for a call with bad arguments; a prefix (the class and its
# file, as some OpenMMLab builders add) is allowed
_UNEXPECTED_ARG = re.compile(
    r"(?P<callee>[\w.<>]+)\(\) got an unexpected keyword argument '(?P<arg>\w+)'")
_MISSING_ARGS = re.compile(
    r'(?P<callee>[\w.<>]+)\(\) missing \d+ required (?:positional|keyword-only) '
    r'arguments?: (?P<args>.+)$')

DEFAULT_DATALOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')
PACK_TRANSFORM = 'PackMultiModalInputs'


# --------------------------------------------------------------------------
# Finding things in a config


def format_key_path(parts: Sequence[Any]) -> str:
    """``['model', 'fusion', 'type']`` -> ``'model.fusion.type'``; list
    indices become ``[i]``: ``train_dataloader.dataset.pipeline[1]``."""
    text = ''
    for part in parts:
        if isinstance(part, int):
            text += f'[{part}]'
        else:
            text += f'.{part}' if text else str(part)
    return text


def iter_config_dicts(node: Any, path: Tuple = ()) -> Iterator[Tuple[Tuple, dict]]:
    """Every dict in a config tree with its key path (a tuple of keys and
    list indices), outermost first."""
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from iter_config_dicts(value, path + (key,))
    elif isinstance(node, (list, tuple)):
        for index, value in enumerate(node):
            yield from iter_config_dicts(value, path + (index,))


def _config_root(cfg: Any) -> dict:
    """The plain dict tree of a :class:`~mmengine.config.Config` (or a dict)."""
    return cfg._cfg_dict if hasattr(cfg, '_cfg_dict') else cfg


def paths_of_type(cfg: Any, type_value: Any, key: Optional[str] = None) -> List[Tuple]:
    """Key paths of the dicts in ``cfg`` whose ``type`` is ``type_value``
    (and that set ``key``, when given)."""
    found = []
    for path, node in iter_config_dicts(_config_root(cfg)):
        node_type = node.get('type')
        same = node_type == type_value if isinstance(type_value, str) else node_type is type_value
        if same and (key is None or key in node):
            found.append(path)
    return found


def _join(items: Sequence[str]) -> str:
    """``['a', 'b', 'c']`` -> ``'a, b and c'``."""
    items = list(items)
    return items[0] if len(items) == 1 else ', '.join(items[:-1]) + ' and ' + items[-1]


def _did_you_mean(matches: Sequence[str]) -> str:
    if not matches:
        return ''
    return ' Did you mean ' + ' or '.join(repr(m) for m in matches) + '?'


# --------------------------------------------------------------------------
# Valid names: registered components, accepted arguments


def registry_names(registry: Registry) -> Dict[str, str]:
    """Names a config can give as ``type`` to ``registry``.

    Returns ``{name: spelling}``: the names of ``registry`` and its parents
    are written as they are; the names of the other scopes in the same
    registry tree (e.g. ``mmcv``'s transforms next to ``mmfusion``'s) with
    their scope, ``'mmcv.RandomFlip'``, which is how a config reaches them.
    """
    chain = []
    node: Optional[Registry] = registry
    while node is not None:
        chain.append(node)
        node = node.parent
    names: Dict[str, str] = {}
    for reg in chain:
        reg.import_from_location()
        for name in reg.module_dict:
            names.setdefault(name, name)

    def visit(reg: Registry) -> None:
        if all(reg is not r for r in chain):
            reg.import_from_location()
            for name in reg.module_dict:
                names.setdefault(name, f'{reg.scope}.{name}')
        for child in reg.children.values():
            visit(child)

    visit(chain[-1])
    return names


def close_matches(word: str, possibilities: Sequence[str], n: int = 3) -> List[str]:
    """Up to ``n`` of ``possibilities`` that look like a misspelling of
    ``word``, best first (:func:`difflib.get_close_matches`), keeping only
    those about as close as the best, so that one clear candidate comes alone."""
    matches = difflib.get_close_matches(word, possibilities, n=n)
    if not matches:
        return []

    def similarity(candidate: str) -> float:
        return difflib.SequenceMatcher(None, candidate, word).ratio()

    best = similarity(matches[0])
    return [m for m in matches if similarity(m) >= best - 0.1]


def closest_names(name: str, candidates: Dict[str, str], n: int = 3) -> List[str]:
    """The spellings (values of ``candidates``, see :func:`registry_names`)
    of the registered names closest to ``name``; a scope prefix of ``name``
    is ignored."""
    bare = name.rsplit('.', 1)[-1]
    return [candidates[m] for m in close_matches(bare, list(candidates), n=n)]


def accepted_arguments(obj: Callable) -> List[str]:
    """The keyword arguments a class (its ``__init__``) or function takes.

    A class whose ``__init__`` takes ``**kwargs`` usually hands them to its
    base class, so the bases' arguments are followed up the MRO until an
    ``__init__`` without ``**kwargs``.
    """
    inits = ([c.__dict__['__init__'] for c in obj.__mro__ if '__init__' in c.__dict__]
             if inspect.isclass(obj) else [obj])
    names: List[str] = []
    for init in inits:
        try:
            params = inspect.signature(init).parameters.values()
        except (TypeError, ValueError):  # builtins without a signature
            break
        takes_kwargs = False
        for param in params:
            if param.kind is param.VAR_KEYWORD:
                takes_kwargs = True
            elif param.kind is not param.VAR_POSITIONAL and param.name != 'self' \
                    and param.name not in names:
                names.append(param.name)
        if not takes_kwargs:
            break
    return names


# --------------------------------------------------------------------------
# Translating MMEngine's build errors


def _innermost_build_frame(exc: BaseException) -> Optional[FrameType]:
    """The innermost frame of an MMEngine registry build function in the
    traceback of ``exc``: the build that was under way when it failed."""
    build_file = mmengine_build_functions.__file__
    frame = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == build_file \
                and isinstance(tb.tb_frame.f_locals.get('registry'), Registry):
            frame = tb.tb_frame
        tb = tb.tb_next
    return frame


def _built_component(frame: FrameType) -> Tuple[dict, Any, Registry]:
    """``(component config, its type, registry)`` of a build frame.

    The build functions all take ``cfg`` and ``default_args`` and rebind
    ``registry`` to the one of the default scope, so their locals say what
    was being built and where its name was looked up.
    """
    local = frame.f_locals
    component = dict(local.get('cfg') or {})
    type_value = component.get('type', (local.get('default_args') or {}).get('type'))
    return component, type_value, local['registry']


def _unknown_type_error(cfg: Any, exc: KeyError, frame: FrameType) -> Optional[ConfigError]:
    match = _UNKNOWN_TYPE.match(str(exc.args[0]) if exc.args else '')
    _, type_value, registry = _built_component(frame)
    if match is None or match['type'] != type_value:
        return None
    paths = paths_of_type(cfg, type_value)
    if not paths:  # a type set by code, not by the config: not a config mistake
        return None
    where = _join([format_key_path(p + ('type',)) for p in paths])
    suggestions = closest_names(type_value, registry_names(registry))
    hint = _did_you_mean(suggestions) or (
        ' Check the spelling, or import the module that registers it with '
        "custom_imports=dict(imports=['my_package.my_module']).")
    return ConfigError(f'{where} = {type_value!r}: no component of that name is registered in '
                       f'the {registry.scope}::{registry.name} registry.{hint}')


def _resolve_type(type_value: Any, registry: Registry) -> Any:
    if not isinstance(type_value, str):
        return type_value
    try:
        return registry.get(type_value)
    except Exception:  # a name that does not resolve is not what failed here
        return None


def _bad_argument_error(cfg: Any, exc: TypeError, frame: FrameType) -> Optional[ConfigError]:
    message = str(exc)
    component, type_value, registry = _built_component(frame)
    obj = _resolve_type(type_value, registry)
    if obj is None:
        return None
    name = getattr(obj, '__name__', str(obj))
    accepted = accepted_arguments(obj)
    # the component or a base class it hands its **kwargs to
    own_names = {getattr(c, '__name__', '') for c in getattr(obj, '__mro__', (obj,))}

    unexpected = _UNEXPECTED_ARG.search(message)
    if unexpected and unexpected['arg'] in component:
        arg = unexpected['arg']
        paths = paths_of_type(cfg, type_value, key=arg)
        if not paths:
            return None
        where = _join([format_key_path(p + (arg,)) for p in paths])
        callee = unexpected['callee'].split('.')[0]
        own = callee in own_names
        if own:
            problem = f'{name} takes no argument {arg!r}'
        else:  # e.g. an encoder that hands its extra arguments to a timm model
            problem = f'{name} passes {arg!r} on to {callee}, which does not take it'
        hint = _did_you_mean(close_matches(arg, accepted))
        takes = f'{name} takes' if own else f"{name}'s own arguments are"
        return ConfigError(f'{where}: {problem}.{hint} {takes}: {", ".join(accepted)}.')

    missing = _MISSING_ARGS.search(message)
    if missing and missing['callee'].split('.')[0] in own_names:
        paths = paths_of_type(cfg, type_value)
        if not paths:
            return None
        args = re.findall(r"'(\w+)'", missing['args'])
        where = _join([format_key_path(p) for p in paths])
        first = format_key_path(paths[0])
        return ConfigError(
            f'{where}: {name} needs {"an argument" if len(args) == 1 else "arguments"} '
            f'{_join([repr(a) for a in args])} that the config does not set; set '
            f'{_join([f"{first}.{a}" for a in args])}.')
    return None


def translate_build_error(cfg: Any, exc: BaseException) -> Optional[ConfigError]:
    """A :class:`ConfigError` for an error MMEngine raised while building a
    component of ``cfg``, or ``None`` when ``exc`` is not one of the
    recognised config mistakes (an unknown ``type``, an unknown or missing
    argument) written in ``cfg``."""
    if not isinstance(exc, (KeyError, TypeError)):
        return None
    frame = _innermost_build_frame(exc)
    if frame is None:
        return None
    if isinstance(exc, KeyError):
        return _unknown_type_error(cfg, exc, frame)
    return _bad_argument_error(cfg, exc, frame)


@contextlib.contextmanager
def explain_config_errors(cfg: Any) -> Iterator[None]:
    """Re-raise MMEngine's unknown-type and bad-argument errors from building
    ``cfg``'s components as :class:`ConfigError` (chained to the original);
    any other error passes unchanged.

    Example::

        with explain_config_errors(cfg):
            runner = Runner.from_cfg(cfg)
            runner.train()
    """
    try:
        yield
    except (KeyError, TypeError) as exc:
        error = translate_build_error(cfg, exc)
        if error is None:
            raise
        raise error from exc


# --------------------------------------------------------------------------
# Modalities: pipelines versus model


def _dataset_pipelines(dataset: Any, path: Tuple) -> Iterator[Tuple[Tuple, list]]:
    """``(key path, pipeline)`` of a dataset config, looking through dataset
    wrappers (``RepeatDataset(dataset=...)``, ``ConcatDataset(datasets=[...])``)."""
    if not isinstance(dataset, dict):
        return
    if isinstance(dataset.get('pipeline'), (list, tuple)):
        yield path + ('pipeline',), dataset['pipeline']
    if isinstance(dataset.get('dataset'), dict):
        yield from _dataset_pipelines(dataset['dataset'], path + ('dataset',))
    if isinstance(dataset.get('datasets'), (list, tuple)):
        for index, inner in enumerate(dataset['datasets']):
            yield from _dataset_pipelines(inner, path + ('datasets', index))


def _packed_modalities(pipeline: Sequence) -> Optional[Tuple[int, List[str]]]:
    """``(index, modalities)`` of a pipeline's last PackMultiModalInputs, or
    None when it has none or packs the defaults (which depend on the data)."""
    for index in range(len(pipeline) - 1, -1, -1):
        step = pipeline[index]
        step_type = step.get('type') if isinstance(step, dict) else None
        name = step_type if isinstance(step_type, str) else getattr(step_type, '__name__', '')
        if name.rsplit('.', 1)[-1] == PACK_TRANSFORM:
            inputs = step.get('inputs')
            if not isinstance(inputs, dict):
                return None
            return index, sorted(m for m, key in inputs.items() if key is not None)
    return None


def check_modalities(cfg: Any, dataloaders: Sequence[str] = DEFAULT_DATALOADERS) -> None:
    """Check that each data loader packs exactly the modalities the model encodes.

    Compares the ``inputs`` of the last ``PackMultiModalInputs`` in each
    listed data loader's pipeline with the keys of ``model.encoders`` (a
    ``None`` entry, which drops an inherited encoder, does not count).
    Configs without ``model.encoders`` or without such a step are not checked.

    Raises:
        ConfigError: naming the pipeline step, ``model.encoders`` and the fix.
    """
    root = _config_root(cfg)
    model = root.get('model')
    encoders = model.get('encoders') if isinstance(model, dict) else None
    if not isinstance(encoders, dict):
        return
    encoded = sorted(m for m, enc in encoders.items() if enc is not None)
    problems = []
    for loader_key in dataloaders:
        loader = root.get(loader_key)
        if not isinstance(loader, dict):
            continue
        for path, pipeline in _dataset_pipelines(loader.get('dataset'),
                                                 (loader_key, 'dataset')):
            packed = _packed_modalities(pipeline)
            if packed is None:
                continue
            index, modalities = packed
            expected = encoded
            if model.get('type') == 'ZeroShotClassifier' and loader_key == 'test_dataloader':
                # its text tower reads the prompts, not the data: the test data
                # carries the item modality only
                expected = [model.get('item_modality', 'image')]
            if modalities != expected:
                problems.append((format_key_path(path + (index, 'inputs')), modalities))
    if not problems:
        return
    by_modalities: Dict[Tuple[str, ...], List[str]] = {}
    for where, modalities in problems:
        by_modalities.setdefault(tuple(modalities), []).append(where)
    lines = [f'{_join(wheres)} {"packs" if len(wheres) == 1 else "pack"} {list(modalities)} '
             f'but model.encoders encodes {encoded}'
             for modalities, wheres in by_modalities.items()]
    packed_not_encoded = sorted({m for _, ms in problems for m in ms} - set(encoded))
    encoded_not_packed = sorted({m for _, ms in problems for m in set(encoded) - set(ms)})
    fixes = [f'{m!r} is packed but no encoder takes it: add model.encoders.{m}=dict(type=...), '
             f'or remove {m!r} from the PackMultiModalInputs inputs' for m in packed_not_encoded]
    fixes += [f"{m!r} has an encoder but is not packed: add {m}='<results key>' to the "
              f'PackMultiModalInputs inputs, or drop the encoder with model.encoders.{m}=None'
              for m in encoded_not_packed]
    raise ConfigError('the data and the model disagree on modalities: ' + '; '.join(lines)
                      + '. ' + '; '.join(fixes) + '.')


# --------------------------------------------------------------------------
# Command-line entry point


def run_main(main: Callable[[], Any], prog: str = 'mmfusion') -> None:
    """Run a tool's ``main``; print an :class:`MMFusionError` as
    ``<prog>: error: <message>`` on stderr and exit with status 1.

    Set ``MMFUSION_TRACEBACK=1`` to see such an error's traceback instead.
    ``SystemExit('message')`` is printed the same way; argparse's usage
    errors keep their exit status 2. Config files, ``--cfg-options`` and
    launchers are checked where every tool reads its config
    (:func:`mmfusion.utils.launch.read_tool_config`). A collective that
    failed because another rank died becomes a
    :class:`~mmfusion.errors.LostRankError` first. Other exceptions (bugs)
    keep their traceback.
    """
    from .dist import lost_rank_error

    try:
        try:
            main()
        except RuntimeError as exc:
            lost = lost_rank_error(exc)
            if lost is None:
                raise
            raise lost from exc
    except MMFusionError as exc:
        if os.environ.get(TRACEBACK_ENV, '') == '1':
            raise
        print(f'{prog}: error: {exc}', file=sys.stderr)
        sys.exit(1)
    except SystemExit as exc:
        # ``raise SystemExit('message')`` would print the bare message; give it
        # the same form as every other error. argparse's exits (status 2 after
        # its usage line) and plain statuses pass unchanged.
        if not isinstance(exc.code, str):
            raise
        print(f'{prog}: error: {exc.code}', file=sys.stderr)
        sys.exit(1)


__all__ = ['DEFAULT_DATALOADERS', 'TRACEBACK_ENV', 'accepted_arguments', 'check_modalities',
           'closest_names', 'explain_config_errors', 'format_key_path', 'iter_config_dicts',
           'paths_of_type', 'registry_names', 'run_main', 'translate_build_error']
