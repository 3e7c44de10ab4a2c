"""Convert a trusted legacy checkpoint into one that mmfusion loads safely.

    python tools/misc/convert_checkpoint.py IN.pth OUT.pth --trusted

mmfusion loads checkpoints with torch's weights-only unpickler and refuses
files holding other objects (e.g. MMEngine's own ``HistoryBuffer`` message
hub, or anything a third party pickled). Reading such a file means running
the code its pickle names, so do it only for a file whose origin you trust,
once: this tool loads it with ``weights_only=False`` (the only place in
mmfusion that does, and only with ``--trusted``), converts MMEngine's objects
and numpy values to plain data, and writes ``OUT`` atomically. Objects with
no plain form are reported by key path; ``--drop-unsupported`` leaves them out.
Finally ``OUT`` is re-read through mmfusion's safe loader to prove it loads.
"""
import argparse
import io
import os.path as osp
import sys
from collections import OrderedDict
from typing import Any, List, Tuple

import torch

import mmfusion  # noqa: F401  (safe checkpoint I/O)
from mmfusion.engine import atomic_write, load_checkpoint_file, to_plain
from mmfusion.errors import CheckpointError, CheckpointWriteError
from mmfusion.utils import run_main

PLAIN_LEAVES = (torch.Tensor, str, bytes, int, float, bool, complex, type(None),
                torch.Size, torch.dtype, torch.device)


def unsupported(obj: Any, path: str = '') -> List[Tuple[str, str]]:
    """(key path, type name) of every value that is not plain data."""
    if isinstance(obj, PLAIN_LEAVES):
        return []
    if isinstance(obj, dict):
        found = []
        for k, v in obj.items():
            found += unsupported(v, f'{path}.{k}' if path else str(k))
        return found
    if isinstance(obj, (list, tuple, set)):
        found = []
        for i, v in enumerate(obj):
            found += unsupported(v, f'{path}[{i}]')
        return found
    return [(path or '<root>', f'{type(obj).__module__}.{type(obj).__qualname__}')]


def drop(obj: Any, paths: set, path: str = '') -> Any:
    """``obj`` without the values at ``paths``."""
    if isinstance(obj, dict):
        kept = [(k, drop(v, paths, f'{path}.{k}' if path else str(k))) for k, v in obj.items()
                if (f'{path}.{k}' if path else str(k)) not in paths]
        return OrderedDict(kept) if isinstance(obj, OrderedDict) else dict(kept)
    if isinstance(obj, (list, tuple)):
        return type(obj)(drop(v, paths, f'{path}[{i}]') for i, v in enumerate(obj)
                         if f'{path}[{i}]' not in paths)
    return obj


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', help='the legacy checkpoint')
    parser.add_argument('dst', help='where the converted checkpoint goes')
    parser.add_argument('--trusted', action='store_true',
                        help='confirm that you trust the origin of SRC: reading it may run '
                        'code stored in it')
    parser.add_argument('--drop-unsupported', action='store_true',
                        help='leave out values with no plain-data form instead of failing')
    args = parser.parse_args()
    if not args.trusted:
        sys.exit(f'reading {args.src} may run code stored in it; convert it only if you '
                 'trust its origin, and say so with --trusted')

    if not osp.isfile(args.src):
        raise CheckpointError(f'checkpoint file not found: {args.src}')
    try:
        checkpoint = torch.load(args.src, map_location='cpu', weights_only=False)
    except Exception as exc:  # truncated, not a checkpoint, or a class that cannot be found
        raise CheckpointError(f'cannot read checkpoint {args.src} ({osp.getsize(args.src)} '
                              f'bytes): {type(exc).__name__}: {exc}') from exc
    checkpoint = to_plain(checkpoint)
    bad = unsupported(checkpoint)
    if bad and not args.drop_unsupported:
        listing = '\n'.join(f'  {p}: {t}' for p, t in bad)
        sys.exit(f'{args.src} holds values with no plain-data form:\n{listing}\n'
                 'convert them yourself, or leave them out with --drop-unsupported')
    if bad:
        checkpoint = drop(checkpoint, {p for p, _ in bad})
        print('left out: ' + ', '.join(p for p, _ in bad))

    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    try:
        atomic_write(args.dst, buffer.getvalue())
    except CheckpointWriteError:
        raise
    except OSError as exc:  # e.g. the output's folder cannot be made
        raise CheckpointError(f'cannot write {args.dst}: {exc.strerror or exc}') from exc
    load_checkpoint_file(args.dst, map_location='cpu')  # proves the result loads safely
    print(f'wrote {args.dst}; it loads with torch.load(weights_only=True)')


if __name__ == '__main__':
    run_main(main)
