"""Where a config's top-level variables were substituted when it was read.

A Python config is executed once: ``data_root = 'data/mmshapes'`` followed by
``train_dataloader = dict(dataset=dict(data_root=data_root))`` leaves the
*value* in ``train_dataloader.dataset.data_root`` and ``data_root`` itself
as a plain top-level key that nothing reads any more. Overriding it later
(``--cfg-options data_root=...``) therefore changes nothing.

:func:`substitution_paths` answers "where did the value of this variable go?"
by reading the config's source (the file and its ``_base_`` files) with
:mod:`ast`: every top-level assignment is followed through ``dict(...)``
calls, ``{...}`` literals, lists and aliases (``test_dataloader =
val_dataloader``), so the answer is exact and does not confuse two keys that
merely hold the same number. Files are only parsed, never executed.
"""
import ast
import os.path as osp
from typing import Any, Dict, Iterator, List, Optional, Sequence, Set, Tuple

from mmengine.config import Config

Path = Tuple[Any, ...]
# a variable used at a key path of a top-level value; ``direct``: the value
# there is the variable itself, not computed from it (``root + '/ann.json'``)
Ref = Tuple[Path, str, bool]
_NO_VALUE = object()


def config_files(filename: str) -> List[str]:
    """``filename`` and the files of its ``_base_`` chain, the config first.

    Uses MMEngine's own resolution of ``_base_`` entries (relative paths and
    ``package::path``); a base that cannot be resolved is left out, since the
    config has been read successfully before this is asked.
    """
    files: List[str] = []
    pending = [osp.abspath(filename)]
    while pending:
        current = pending.pop(0)
        if current in files or not current.endswith('.py') or not osp.isfile(current):
            continue
        files.append(current)
        try:
            bases = Config._get_base_files(current)
        except Exception:  # a malformed _base_: nothing more to follow
            continue
        for base in bases:
            try:
                path, _ = Config._get_cfg_path(base, current)
            except Exception:  # an uninstalled package's config
                continue
            pending.append(osp.abspath(path))
    return files


def _names_in(node: ast.AST) -> Iterator[str]:
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name):
            yield sub.id


def _raw_refs(node: ast.AST) -> List[Ref]:
    """The variables an expression uses, each with the key path (inside the
    value it builds) where it lands: ``dict(dataset=dict(data_root=x))`` ->
    ``[(('dataset', 'data_root'), 'x')]``. A variable used in a computed value
    (``x + '/ann.json'``, a call) lands at the path of that value."""
    if isinstance(node, ast.Name):
        return [((), node.id, True)]
    refs: List[Ref] = []
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
            and node.func.id == 'dict':
        for arg in node.args:  # dict(base, key=...): the base's keys land as they are
            refs += _raw_refs(arg)
        for keyword in node.keywords:
            prefix: Path = () if keyword.arg is None else (keyword.arg,)
            refs += [(prefix + path, name, direct)
                     for path, name, direct in _raw_refs(keyword.value)]
        return refs
    if isinstance(node, ast.Dict):
        for key, value in zip(node.keys, node.values):
            if key is None:  # {**base}
                refs += _raw_refs(value)
            elif isinstance(key, ast.Constant) and isinstance(key.value, (str, int)):
                refs += [((key.value,) + path, name, direct)
                         for path, name, direct in _raw_refs(value)]
            else:
                refs += [((), name, False) for name in _names_in(value)]
        return refs
    if isinstance(node, (ast.List, ast.Tuple)) \
            and not any(isinstance(e, ast.Starred) for e in node.elts):
        for index, element in enumerate(node.elts):
            refs += [((index,) + path, name, direct)
                     for path, name, direct in _raw_refs(element)]
        return refs
    return [((), name, False) for name in _names_in(node)]


def _literal(node: ast.AST) -> Any:
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return _NO_VALUE


def _file_refs(filename: str) -> Tuple[Dict[str, List[Ref]], Dict[str, Any]]:
    """For one config file: ``{top-level name: refs to variables in its final
    value}`` (aliases followed in the order the file runs them) and
    ``{variable: literal value}`` for variables assigned a literal."""
    with open(filename, encoding='utf-8') as f:
        tree = ast.parse(f.read(), filename)
    current: Dict[str, List[Ref]] = {}
    literals: Dict[str, Any] = {}
    for statement in tree.body:
        if isinstance(statement, ast.Assign):
            targets, value = statement.targets, statement.value
        elif isinstance(statement, ast.AnnAssign) and statement.value is not None:
            targets, value = [statement.target], statement.value
        else:
            continue
        refs: List[Ref] = []
        for path, name, direct in _raw_refs(value):
            if name not in current:
                continue  # a builtin, an import or a function: not a config variable
            refs.append((path, name, direct))
            # what the used variable's value carried lands below this path
            refs += [(path + inner, var, direct and inner_direct)
                     for inner, var, inner_direct in current[name]]
        for target in targets:
            if isinstance(target, ast.Name):
                current[target.id] = refs
                literals[target.id] = _literal(value)
    return current, literals


def _lookup(root: Any, path: Path) -> Any:
    node = root
    for part in path:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, (list, tuple)) and isinstance(part, int) \
                and -len(node) <= part < len(node):
            node = node[part]
        else:
            return _NO_VALUE
    return node


def substitution_paths(cfg: Config, name: str, keep: Optional[Set[str]] = None,
                       files: Optional[Sequence[str]] = None) -> List[Path]:
    """Key paths of ``cfg`` into which the variable ``name`` was substituted.

    Args:
        cfg: the loaded config (its ``filename`` names the source).
        name: a top-level variable, e.g. ``'data_root'``.
        keep: only paths under these top-level keys (those something reads);
            default all but ``name`` itself.
        files: the source files; default :func:`config_files` of ``cfg``.

    Returns:
        Key paths such as ``('train_dataloader', 'dataset', 'data_root')``,
        in the order of the config's top-level keys, that still exist in
        ``cfg`` and, where the variable was set to a literal, still hold its
        value there (a later file may have overridden the key).
    """
    if files is None:
        files = config_files(cfg.filename) if getattr(cfg, 'filename', None) else []
    root = cfg._cfg_dict if hasattr(cfg, '_cfg_dict') else cfg
    found: Set[Path] = set()
    for filename in files:
        try:
            current, literals = _file_refs(filename)
        except (OSError, SyntaxError, UnicodeDecodeError):
            continue
        if name not in current:
            continue  # not a variable of this file: its other keys cannot hold it
        expected = literals.get(name, _NO_VALUE)
        for top, refs in current.items():
            if top == name or (keep is not None and top not in keep):
                continue
            for path, var, direct in refs:
                if var != name:
                    continue
                full = (top,) + path
                value = _lookup(root, full)
                if value is _NO_VALUE:
                    continue
                if direct and expected is not _NO_VALUE and value != expected:
                    continue  # replaced since: this key no longer holds the variable
                found.add(full)
    order = {key: index for index, key in enumerate(root)}
    # in the config's own order (train before val before test), then by key path
    return sorted(found, key=lambda p: (order.get(p[0], len(order)), [str(x) for x in p]))


__all__ = ['config_files', 'substitution_paths']
