"""Plot training curves and summarise training speed from MMEngine's JSON logs.

    python tools/analysis_tools/analyze_logs.py plot_curve LOG [LOG ...] \\
        --keys loss vqa/acc --out curves.png [--title T] [--legend A B ...]
    python tools/analysis_tools/analyze_logs.py cal_train_time LOG [LOG ...] \\
        [--include-outliers]

``LOG`` is a JSON-lines scalar log as MMEngine writes it during training,
``<work_dir>/<timestamp>/vis_data/scalars.json`` (or its twin
``<timestamp>.json`` in the same folder), or a work dir / timestamp folder,
in which case the newest ``vis_data/scalars.json`` under it is used.

Training records (they carry ``iter``) are plotted against the iteration,
validation records (``step`` is the epoch, or the iteration for iteration-
based schedules) against the epoch; asking for keys of both kinds draws two
panels, one above the other. ``cal_train_time`` averages the logged ``time``
(seconds per iteration) per epoch, leaving out each epoch's first record
(the data loader's start-up) unless ``--include-outliers`` or it is the
epoch's only record.
"""
import argparse
import glob
import json
import os.path as osp
import statistics
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple

import mmfusion  # noqa: F401
from mmfusion.errors import DataError
from mmfusion.utils import run_main
from mmfusion.utils.analysis import import_pyplot, save_figure


class ScalarLog:
    """One JSON-lines scalar log, split into training and validation records.

    Attributes:
        path: the file read.
        train: records with an ``iter`` (one per logged training iteration).
        val: the other records (evaluation results, one per evaluation).
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.train: List[dict] = []
        self.val: List[dict] = []
        with open(path, encoding='utf-8') as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(f'{path}, line {number}: not a JSON record ({exc.msg}); '
                                    'expected the JSON-lines log MMEngine writes as '
                                    'vis_data/scalars.json') from exc
                if not isinstance(record, dict):
                    raise DataError(f'{path}, line {number}: expected a JSON object, got '
                                    f'{type(record).__name__}')
                (self.train if 'iter' in record else self.val).append(record)
        if not self.train and not self.val:
            raise DataError(f'{path}: the log holds no records')

    @property
    def name(self) -> str:
        """A short label: the timestamp folder the log lies in (or the file name)."""
        parent = osp.dirname(osp.abspath(self.path))
        if osp.basename(parent) == 'vis_data':
            return osp.basename(osp.dirname(parent))
        return osp.splitext(osp.basename(self.path))[0]

    def train_keys(self) -> List[str]:
        return sorted({k for r in self.train for k in r} - {'epoch', 'iter', 'step'})

    def val_keys(self) -> List[str]:
        return sorted({k for r in self.val for k in r} - {'step'})

    def series(self, key: str) -> Tuple[str, List[float], List[float]]:
        """``(kind, x, y)`` of ``key``: kind ``'train'`` (x: iteration) when
        training records carry it, else ``'val'`` (x: the records' step)."""
        for kind, records, x_key in (('train', self.train, 'iter'), ('val', self.val, 'step')):
            points = [(r[x_key], r[key]) for r in records if key in r and x_key in r]
            if points:
                xs, ys = zip(*points)
                return kind, list(xs), [float(y) for y in ys]
        raise DataError(f'{self.path}: no record has the key {key!r}; training keys: '
                        f'{", ".join(self.train_keys()) or "none"}; evaluation keys: '
                        f'{", ".join(self.val_keys()) or "none"}')

    def epoch_times(self, include_outliers: bool = False) -> Dict[int, List[float]]:
        """Epoch -> the logged seconds per iteration of that epoch's records.

        Logs of iteration-based schedules (no ``epoch``) count as one epoch.
        """
        by_epoch: Dict[int, List[float]] = OrderedDict()
        for record in self.train:
            if 'time' in record:
                by_epoch.setdefault(int(record.get('epoch', 1)), []).append(float(record['time']))
        if not include_outliers:
            # the first record of an epoch includes starting the data-loader workers;
            # an epoch logged once (fewer iterations than twice the logging
            # interval) keeps its only record, where that start is averaged in
            by_epoch = OrderedDict((e, t[1:] if len(t) > 1 else t) for e, t in by_epoch.items())
        if not by_epoch:
            raise DataError(f'{self.path}: no training record with "time" (was this log written '
                            'by tools/train.py?)')
        return by_epoch


def find_log(path: str) -> str:
    """The JSON log a command-line argument means: the file itself, or the
    newest ``vis_data/scalars.json`` under a work dir or timestamp folder."""
    if osp.isfile(path):
        return path
    if osp.isdir(path):
        found = glob.glob(osp.join(path, 'vis_data', 'scalars.json')) or sorted(
            glob.glob(osp.join(path, '*', 'vis_data', 'scalars.json')))
        if found:
            return found[-1]  # timestamp folders sort by time
        raise DataError(f'{path}: a folder without vis_data/scalars.json or '
                        '*/vis_data/scalars.json; give the JSON log itself')
    raise DataError(f'log file not found: {path}')


def load_logs(paths: Sequence[str]) -> List[ScalarLog]:
    return [ScalarLog(find_log(p)) for p in paths]


# --------------------------------------------------------------------------
# plot_curve


def plot_curve(logs: List[ScalarLog], keys: Sequence[str], out: str,
               title: Optional[str] = None, legend: Optional[Sequence[str]] = None) -> str:
    """Draw ``keys`` of every log; training keys against the iteration,
    evaluation keys against the epoch (two panels if both kinds are asked
    for). Returns ``out``."""
    plt = import_pyplot()
    from matplotlib.ticker import MaxNLocator
    if legend is None:
        multi = len(logs) > 1
        legend = [f'{log.name}: {key}' if multi else key for log in logs for key in keys]
    elif len(legend) != len(logs) * len(keys):
        raise DataError(f'--legend gives {len(legend)} labels but {len(logs)} log(s) x '
                        f'{len(keys)} key(s) = {len(logs) * len(keys)} curves are drawn')
    curves = []
    labels = iter(legend)
    for log in logs:
        for key in keys:
            curves.append((log.series(key), next(labels)))
    kinds = [k for k in ('train', 'val') if any(c[0][0] == k for c in curves)]
    fig, axes = plt.subplots(len(kinds), 1, figsize=(7, 3.6 * len(kinds)), squeeze=False)
    for ax, kind in zip(axes[:, 0], kinds):
        for (curve_kind, xs, ys), label in curves:
            if curve_kind == kind:
                ax.plot(xs, ys, label=label, marker='o' if kind == 'val' else None,
                        markersize=3, linewidth=1.2)
        ax.set_xlabel('iteration' if kind == 'train' else 'epoch (evaluation step)')
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        axes[0, 0].set_title(title)
    fig.tight_layout()
    return save_figure(fig, out)


# --------------------------------------------------------------------------
# cal_train_time


def train_time_summary(log: ScalarLog, include_outliers: bool = False) -> dict:
    """Slowest/fastest epoch by mean seconds per iteration, their spread and
    the mean over all the records counted."""
    by_epoch = log.epoch_times(include_outliers)
    means = {epoch: statistics.fmean(times) for epoch, times in by_epoch.items()}
    slowest = max(means, key=means.get)
    fastest = min(means, key=means.get)
    return dict(epoch_means=means, slowest=slowest, fastest=fastest,
                std=statistics.pstdev(means.values()),
                average=statistics.fmean(t for times in by_epoch.values() for t in times))


def cal_train_time(logs: List[ScalarLog], include_outliers: bool = False) -> None:
    for log in logs:
        summary = train_time_summary(log, include_outliers)
        means = summary['epoch_means']
        print(f'-----Analyze train time of {log.path}-----')
        print(f'slowest epoch {summary["slowest"]}, average time is '
              f'{means[summary["slowest"]]:.4f} s/iter')
        print(f'fastest epoch {summary["fastest"]}, average time is '
              f'{means[summary["fastest"]]:.4f} s/iter')
        print(f'time std over epochs is {summary["std"]:.4f}')
        print(f'average iter time: {summary["average"]:.4f} s/iter')
        print()


# --------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Analyze MMEngine JSON training logs')
    sub = parser.add_subparsers(dest='task', required=True)

    plot = sub.add_parser('plot_curve', help='plot logged values against iteration/epoch')
    plot.add_argument('json_logs', nargs='+', help='vis_data/scalars.json files (or work dirs)')
    plot.add_argument('--keys', nargs='+', default=['loss'],
                      help='the values to plot, e.g. loss vqa/acc (default: loss)')
    plot.add_argument('--title', help='title of the figure')
    plot.add_argument('--legend', nargs='+', help='one label per log and key, in the order '
                      'log1:key1, log1:key2, ..., log2:key1, ...')
    plot.add_argument('--out', required=True, help='the image to write, e.g. curves.png')

    timing = sub.add_parser('cal_train_time', help='seconds per iteration, per epoch')
    timing.add_argument('json_logs', nargs='+', help='vis_data/scalars.json files (or work dirs)')
    timing.add_argument('--include-outliers', action='store_true',
                        help="also count each epoch's first logged record")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    logs = load_logs(args.json_logs)
    if args.task == 'plot_curve':
        out = plot_curve(logs, args.keys, args.out, args.title, args.legend)
        print(f'plot written to {out}')
    else:
        cal_train_time(logs, args.include_outliers)


if __name__ == '__main__':
    run_main(main)
