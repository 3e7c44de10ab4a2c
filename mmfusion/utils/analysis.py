"""Helpers shared by ``tools/analysis_tools``: plotting with an optional
matplotlib, and reading the pickled predictions that ``tools/test.py --out``
(MMEngine's ``DumpResults``) writes."""
import os
import os.path as osp
import pickle
from typing import Any, List

from mmfusion.errors import ConfigError, DataError, MMFusionError

MATPLOTLIB_HINT = ('matplotlib is needed to draw plots; install it with `pip install matplotlib` '
                   '(or `pip install -e ".[optional]"`)')


def import_pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (files only, no display
    needed), or an :class:`~mmfusion.errors.MMFusionError` with the install
    hint when matplotlib is missing: it is an optional dependency."""
    try:
        import matplotlib
    except ImportError as exc:
        raise MMFusionError(MATPLOTLIB_HINT) from exc
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt


def save_figure(fig: Any, out_file: str, dpi: int = 100) -> str:
    """Write a matplotlib figure as ``out_file`` (parent folders made), close it
    and return the path."""
    import matplotlib.pyplot as plt

    suffix = osp.splitext(out_file)[1].lstrip('.').lower()
    formats = fig.canvas.get_supported_filetypes()
    if suffix not in formats:
        plt.close(fig)
        raise ConfigError(f'cannot write a figure to {out_file}: the name must end in one of '
                          f'{", ".join("." + f for f in sorted(formats))}')
    parent = osp.dirname(osp.abspath(out_file))
    os.makedirs(parent, exist_ok=True)
    fig.savefig(out_file, dpi=dpi, bbox_inches='tight')
    plt.close(fig)
    return out_file


def load_results(path: str) -> List[dict]:
    """The list of per-sample prediction dicts in a results pickle.

    Raises:
        DataError: naming the file, when it is missing, not a pickle or not
            a non-empty list of dicts.
    """
    if not osp.isfile(path):
        raise DataError(f'results file not found: {path} (write one with '
                        '`tools/test.py CONFIG CHECKPOINT --out FILE.pkl`)')
    try:
        with open(path, 'rb') as f:
            # the file is the user's own output of tools/test.py
            results = pickle.load(f)
    except Exception as exc:  # truncated, not a pickle, or an unknown class
        raise DataError(f'{path}: not a results pickle ({type(exc).__name__}: {exc})') from exc
    if not isinstance(results, (list, tuple)) or not results \
            or not all(isinstance(r, dict) for r in results):
        raise DataError(f'{path}: expected a non-empty list of per-sample dicts (as DumpResults '
                        f'writes), got {type(results).__name__}'
                        + (f' of {len(results)} items' if isinstance(results, (list, tuple))
                           else ''))
    return list(results)
