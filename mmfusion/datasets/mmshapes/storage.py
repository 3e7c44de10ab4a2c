"""Generate-on-first-use: check a copy on disk against the wanted
parameters, and publish a new copy atomically (safe when several processes
generate at once)."""
import json
import os
import os.path as osp
import shutil
import tempfile
from collections import Counter
from typing import Dict, Optional

from mmengine.dist import is_main_process
from mmengine.logging import print_log

from mmfusion.errors import DataError

from .generate import check_params, generate_mmshapes
from .spec import DEFAULT_MMSHAPES, MMSHAPES_VERSION


def read_meta(data_root: str) -> Optional[dict]:
    """The parsed ``meta.json`` of ``data_root``, or None if there is none."""
    meta_path = osp.join(data_root, 'meta.json')
    if not osp.isfile(meta_path):
        return None
    try:
        with open(meta_path, encoding='utf-8') as f:
            meta = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f'{meta_path}: cannot read the MMShapes description ({exc}); delete the '
                        'folder to generate MMShapes again, or repair the file') from exc
    if not isinstance(meta, dict):
        raise DataError(f'{meta_path}: expected a JSON object describing MMShapes, got '
                        f'{type(meta).__name__}')
    return meta


def check_existing(data_root: str, params: dict, any_params: bool = False) -> bool:
    """True if ``data_root`` holds this exact MMShapes (with ``any_params``:
    this version, whatever its sizes), False if it does not exist (or is an
    empty folder); raise ValueError otherwise."""
    if not osp.exists(data_root):
        return False
    meta = read_meta(data_root)
    if meta is None:
        if osp.isdir(data_root) and not os.listdir(data_root):
            return False
        raise ValueError(
            f'{data_root!r} exists but is not an MMShapes dataset (no '
            f'meta.json); refusing to touch it. Choose another data_root or '
            f'remove that folder yourself.')
    found = dict(version=meta.get('version'), **meta.get('params', {}))
    wanted = dict(version=MMSHAPES_VERSION, **params)
    if any_params:
        found, wanted = found['version'], wanted['version']
    if found != wanted:
        raise ValueError(
            f'{data_root!r} holds MMShapes generated with {found}, but '
            f'{wanted} was requested. Delete the folder {data_root!r} to '
            f'regenerate it, or choose another data_root.')
    return True


def _on_rank_zero() -> bool:
    """Whether this process is rank 0. ``RANK`` is checked as well because a
    dataset may be built before the process group exists, when MMEngine
    reports rank 0 on every process."""
    return is_main_process() and os.environ.get('RANK', '0') == '0'


def ensure_mmshapes(data_root: str, *, progress: Optional[bool] = None, **params) -> str:
    """Generate into data_root unless a complete copy with the same params and
    version is already there; return data_root.

    Without ``params``, any complete copy of the current version is accepted
    (whatever its sizes), and the defaults are generated if there is none;
    pass params to insist on a particular copy.

    While generating, ``progress`` (default: on rank 0 only) shows one
    progress bar per split; nothing is shown when the copy already exists.

    Safe when several processes (distributed ranks) call it at once: each
    generates into a unique temporary sibling directory (meta.json written
    last) and ``os.rename``-s it onto ``data_root``; a process whose rename
    loses the race deletes its temporary copy and uses the winner's.

    Raises:
        ValueError: ``data_root`` holds MMShapes with other params/version,
            or is a non-empty folder that is not MMShapes (never deleted).
        TypeError: unknown parameter names.
    """
    unknown = set(params) - set(DEFAULT_MMSHAPES)
    if unknown:
        raise TypeError(f'unknown MMShapes parameters: {sorted(unknown)}')
    any_params = not params
    params = {**DEFAULT_MMSHAPES, **params}
    check_params(**params)
    params = {k: int(v) for k, v in params.items()}
    if check_existing(data_root, params, any_params):
        return data_root

    print_log(f'Generating MMShapes v{MMSHAPES_VERSION} {params} into '
              f'{data_root} ...', logger='current')
    target = osp.abspath(data_root)
    parent = osp.dirname(target)
    os.makedirs(parent, exist_ok=True)
    tmp_dir = tempfile.mkdtemp(prefix=f'.{osp.basename(target)}.tmp-',
                               dir=parent)
    os.chmod(tmp_dir, 0o755)  # mkdtemp makes it private; the data is not
    try:
        if progress is None:
            progress = _on_rank_zero()
        generate_mmshapes(tmp_dir, progress=progress, **params)
        if osp.isdir(target) and not os.listdir(target):
            try:
                os.rmdir(target)  # empty placeholder; cannot hold user data
            except OSError:
                pass  # someone else just filled or removed it
        try:
            os.rename(tmp_dir, target)
        except OSError:
            # Another process won the race; its copy must be the one wanted.
            if not check_existing(data_root, params, any_params):
                raise
    finally:
        if osp.exists(tmp_dir):
            shutil.rmtree(tmp_dir, ignore_errors=True)
    return data_root


def mmshapes_stats(data_root: str, split: str = 'train') -> Dict[str, dict]:
    """Share of each VQA ``multiple_choice_answer`` per answer type."""
    path = osp.join(data_root, 'vqa', f'v2_mmshapes_{split}_annotations.json')
    with open(path, encoding='utf-8') as f:
        anns = json.load(f)['annotations']
    per_type: Dict[str, Counter] = {}
    for ann in anns:
        per_type.setdefault(ann['answer_type'],
                            Counter())[ann['multiple_choice_answer']] += 1
    return {
        atype: {a: n / sum(c.values()) for a, n in sorted(c.items())}
        for atype, c in per_type.items()
    }


__all__ = ['check_existing', 'ensure_mmshapes', 'mmshapes_stats', 'read_meta']
