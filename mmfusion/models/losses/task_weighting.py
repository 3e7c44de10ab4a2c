"""Loss weighting across tasks for multi-task learning.

Every weighting maps ``(task, task_loss)`` to the term added to the total
loss, so :class:`~mmfusion.models.MultiTaskModel` does not care which one a
config picks:

* :class:`FixedTaskWeighting` - constant weights;
* :class:`UncertaintyTaskWeighting` - learnt homoscedastic uncertainty
  (Kendall, Gal and Cipolla, CVPR 2018);
* :class:`DWATaskWeighting` - Dynamic Weight Average (Liu, Johns and
  Davison, "End-to-End Multi-Task Learning with Attention", CVPR 2019).

A batch holds one task (see ``TaskBatchSampler``), so each call weighs one
task's loss. GradNorm (Chen et al. 2018) is not offered: it balances the
gradient norms of all tasks at the same step on a shared layer, which needs
every task in every batch.
"""
import math
from typing import Dict, Optional, Sequence

import torch
import torch.nn as nn
from mmengine.dist import all_reduce, is_distributed

from mmfusion.errors import ConfigError
from mmfusion.registry import MODELS


class BaseTaskWeighting(nn.Module):
    """Base of the task weightings.

    Args:
        tasks: the task names (filled in by the model).

    ``forward(task, loss)``: ``loss`` a scalar tensor, the task's loss on this
    batch; returns the scalar term to add to the total loss. ``weight(task)``
    is the factor currently applied (for the logs).
    """

    def __init__(self, tasks: Sequence[str]) -> None:
        super().__init__()
        if not tasks:
            raise ConfigError('a task weighting needs at least one task')
        self.tasks = list(tasks)

    def _index(self, task: str) -> int:
        if task not in self.tasks:
            raise ConfigError(f'{type(self).__name__}: unknown task {task!r}; the tasks are '
                              f'{self.tasks}')
        return self.tasks.index(task)

    def weight(self, task: str) -> float:
        raise NotImplementedError

    def forward(self, task: str, loss: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


@MODELS.register_module()
class FixedTaskWeighting(BaseTaskWeighting):
    """Constant weights: ``term = weights[task] * loss``.

    Args:
        tasks: the task names.
        weights: task -> weight (>= 0); tasks left out weigh 1.
    """

    def __init__(self, tasks: Sequence[str], weights: Optional[Dict[str, float]] = None) -> None:
        super().__init__(tasks)
        weights = dict(weights or {})
        unknown = sorted(set(weights) - set(self.tasks))
        if unknown:
            raise ConfigError(f'model.task_weighting.weights names tasks {unknown} that '
                              f'model.tasks does not have ({self.tasks})')
        for task, w in weights.items():
            if not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0:
                raise ConfigError(f'model.task_weighting.weights.{task} must be a finite '
                                  f'number >= 0, got {w!r}')
        self.weights = {t: float(weights.get(t, 1.0)) for t in self.tasks}

    def weight(self, task: str) -> float:
        self._index(task)
        return self.weights[task]

    def forward(self, task: str, loss: torch.Tensor) -> torch.Tensor:
        return self.weight(task) * loss


@MODELS.register_module()
class UncertaintyTaskWeighting(BaseTaskWeighting):
    """Learnt task uncertainty (Kendall, Gal and Cipolla, CVPR 2018).

    Each task ``t`` has a learnt ``s_t = log sigma_t^2`` and contributes
    ``0.5 * exp(-s_t) * L_t + 0.5 * s_t`` (eq. 7 of the paper written with
    ``s = log sigma^2``, the numerically stable form it recommends): a task
    whose loss stays high gets a larger sigma and a smaller weight, and the
    ``s_t`` term stops sigma from growing without bound. At the optimum
    ``exp(s_t)`` equals the task's loss.

    Args:
        tasks: the task names.
        init_log_var: initial ``s_t`` (0: every weight starts at 0.5).

    ``log_vars`` (K,) is an ``nn.Parameter`` of the model, so the optimizer
    of the model learns it.
    """

    def __init__(self, tasks: Sequence[str], init_log_var: float = 0.0) -> None:
        super().__init__(tasks)
        self.log_vars = nn.Parameter(torch.full((len(self.tasks), ), float(init_log_var)))

    def weight(self, task: str) -> float:
        return float(0.5 * torch.exp(-self.log_vars[self._index(task)].detach()))

    def forward(self, task: str, loss: torch.Tensor) -> torch.Tensor:
        s = self.log_vars[self._index(task)]
        return 0.5 * torch.exp(-s) * loss + 0.5 * s


@MODELS.register_module()
class DWATaskWeighting(BaseTaskWeighting):
    """Dynamic Weight Average (Liu, Johns and Davison, CVPR 2019, eq. 6).

    ``w_t = K * softmax_t(r_t / T)`` with ``r_t = L_t(n-1) / L_t(n-2)``, the
    ratio of task ``t``'s mean loss over the last two periods: a task whose
    loss falls slowly gets more weight. The paper's period is an epoch; here
    it is ``interval`` training iterations (a multi-task epoch can be long,
    and the iteration count does not depend on the loader). The weights are
    1 for the first two periods, as in the paper.

    Args:
        tasks: the task names.
        temperature: ``T``; larger is closer to equal weights (paper: 2).
        interval: iterations per period.

    The running sums and weights are buffers, so a resumed run continues
    with the same weights; in distributed training the period means are
    averaged over the ranks, so every rank uses the same weights.
    """

    def __init__(self, tasks: Sequence[str], temperature: float = 2.0,
                 interval: int = 100) -> None:
        super().__init__(tasks)
        if temperature <= 0:
            raise ConfigError(f'model.task_weighting.temperature must be > 0, got {temperature}')
        if not isinstance(interval, int) or interval < 1:
            raise ConfigError(f'model.task_weighting.interval must be a positive int, got '
                              f'{interval!r}')
        self.temperature = float(temperature)
        self.interval = interval
        k = len(self.tasks)
        self.register_buffer('weights', torch.ones(k))
        self.register_buffer('loss_sum', torch.zeros(k))
        self.register_buffer('loss_count', torch.zeros(k))
        # mean losses of the last two periods, NaN until known
        self.register_buffer('history', torch.full((2, k), float('nan')))
        self.register_buffer('steps', torch.zeros((), dtype=torch.long))

    def weight(self, task: str) -> float:
        return float(self.weights[self._index(task)])

    def _end_period(self) -> None:
        sums, counts = self.loss_sum.clone(), self.loss_count.clone()
        if is_distributed():
            all_reduce(sums)
            all_reduce(counts)
        means = torch.where(counts > 0, sums / counts.clamp(min=1), self.history[1])
        self.history.copy_(torch.stack([self.history[1], means]))
        if torch.isfinite(self.history).all():
            ratio = self.history[1] / self.history[0].clamp(min=1e-12)
            self.weights.copy_(len(self.tasks) * torch.softmax(ratio / self.temperature, 0))
        self.loss_sum.zero_()
        self.loss_count.zero_()

    def forward(self, task: str, loss: torch.Tensor) -> torch.Tensor:
        k = self._index(task)
        # this period's weight (a copy: the buffer may change below)
        term = self.weights[k].clone() * loss
        if self.training:
            self.loss_sum[k] += loss.detach().float()
            self.loss_count[k] += 1
            self.steps += 1
            if int(self.steps) % self.interval == 0:
                self._end_period()
        return term


__all__ = ['BaseTaskWeighting', 'DWATaskWeighting', 'FixedTaskWeighting',
           'UncertaintyTaskWeighting']
