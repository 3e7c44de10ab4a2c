"""Relative and effective robustness of a metric-vs-severity curve, for any task.

MultiBench (``eval_scripts/robustness.py``) min-max normalises against its own
hard-coded tables of results, so a new task cannot be scored. Here both
numbers are defined on a curve alone, or on a curve and one reference curve
that the user chooses (e.g. a unimodal or a non-robust baseline run):

* ``m(s)``: the metric at severity ``s = level / 10`` (or, for attacks, at
  ``s = eps / eps_max``), ``m(0)`` the clean metric.
* **relative robustness** ``RR = (integral_0^1 m(s) ds) / m(0)``: the area under
  the curve (trapezoid rule on the measured points) over the clean metric;
  1 means no degradation at all, and it is unit-free, so tasks and metrics
  can be compared. The raw area ``AUC`` is reported too.
* **effective robustness** against a reference curve ``r``:
  ``ER = RR(m) - RR(r)``: the share of its clean performance the model keeps,
  beyond what the reference keeps. Positive: degrades less than the
  reference, whatever their clean metrics (a model is not more "robust" only
  for being more accurate). The absolute form ``ER_abs = integral (m(s) - m(0))
  - (r(s) - r(0)) ds`` is reported too (in metric units).

Both assume a metric where higher is better.
"""
from typing import Dict, Sequence

import numpy as np


def _area(x: Sequence[float], y: Sequence[float]) -> float:
    x, y = np.asarray(x, float), np.asarray(y, float)
    span = x[-1] - x[0]
    if span <= 0:
        return float(y[0])
    # normalised to a unit-long severity axis
    return float(np.sum((y[1:] + y[:-1]) * np.diff(x)) / 2 / span)


def relative_robustness(severities: Sequence[float], values: Sequence[float]) -> Dict[str, float]:
    """``{'auc': area under m(s) on s in [0, 1], 'rr': auc / m(0)}``;
    the first point must be the clean one (severity 0)."""
    if len(severities) != len(values) or not len(values):
        raise ValueError('relative_robustness: need as many severities as values, at least one')
    clean = float(values[0])
    auc = _area(severities, values)
    return dict(auc=auc, rr=auc / clean if clean else float('nan'))


def effective_robustness(severities: Sequence[float], values: Sequence[float],
                         ref_severities: Sequence[float],
                         ref_values: Sequence[float]) -> Dict[str, float]:
    """``{'er': RR(model) - RR(ref), 'er_abs': mean drop of ref - mean drop of model}``."""
    m = relative_robustness(severities, values)
    r = relative_robustness(ref_severities, ref_values)
    er_abs = (m['auc'] - float(values[0])) - (r['auc'] - float(ref_values[0]))
    return dict(er=m['rr'] - r['rr'], er_abs=er_abs)


__all__ = ['effective_robustness', 'relative_robustness']
