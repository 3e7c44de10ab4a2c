"""A progress bar over the evaluation loops (validation and test)."""
import sys
from typing import IO, Any, Optional, Sequence

from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.utils import ProgressBar

from mmfusion.errors import ConfigError
from mmfusion.registry import HOOKS


@HOOKS.register_module()
class EvalProgressHook(Hook):
    """Shows MMEngine's :class:`~mmengine.utils.ProgressBar` while the
    validation and/or test loop runs, counting batches of this process.

    Only the main process draws (the other ranks' shards run in step with
    it). The bar redraws its line with carriage returns, which is what a
    terminal needs and what makes a redirected stdout (a log file, a CI
    capture) unreadable; so by default it is drawn only when ``stream`` is
    a terminal. The run's own log file (``<work_dir>/<timestamp>/*.log``) is
    written by MMEngine's logger and never contains the bar.

    Args:
        phases: which loops get a bar, any of ``'val'`` and ``'test'``.
        only_tty: draw only when ``stream`` is a terminal; ``False`` draws
            into any stream (e.g. for a file you read afterwards).
        stream: where the bar goes; default ``sys.stdout`` as of the loop's
            start (so a redirection made after the hook was built counts).
        bar_width: characters of the bar itself.
    """

    priority = 'VERY_LOW'  # after the evaluators and visualisers of the same iteration
    PHASES = ('val', 'test')

    def __init__(self, phases: Sequence[str] = PHASES, only_tty: bool = True,
                 stream: Optional[IO[str]] = None, bar_width: int = 40) -> None:
        phases = (phases,) if isinstance(phases, str) else tuple(phases)
        unknown = [p for p in phases if p not in self.PHASES]
        if unknown or not phases:
            raise ConfigError(f'EvalProgressHook: phases must be a non-empty subset of '
                              f'{list(self.PHASES)}, got {list(phases)}')
        if bar_width < 2:
            raise ConfigError(f'EvalProgressHook: bar_width must be at least 2, got {bar_width}')
        self.phases = phases
        self.only_tty = only_tty
        self.stream = stream
        self.bar_width = bar_width
        self._bar: Optional[ProgressBar] = None
        self._stream: Optional[IO[str]] = None

    # -- helpers ---------------------------------------------------------
    def _output(self) -> Optional[IO[str]]:
        """The stream to draw into, or None when nothing should be drawn."""
        if not is_main_process():
            return None
        stream = self.stream if self.stream is not None else sys.stdout
        if self.only_tty:
            isatty = getattr(stream, 'isatty', None)
            if isatty is None or not isatty():
                return None
        return stream

    def _start(self, phase: str, dataloader: Any) -> None:
        self._bar = None
        if phase not in self.phases:
            return
        stream = self._output()
        if stream is None:
            return
        try:
            total = len(dataloader)
        except TypeError:  # an iterable loader without a length: count without a total
            total = 0
        self._stream = stream
        self._bar = ProgressBar(total, bar_width=self.bar_width, file=stream)

    def _step(self) -> None:
        if self._bar is None:
            return
        self._bar.update()
        if self._bar.completed == self._bar.task_num:
            # end the line at the last batch: the metrics that the logger prints
            # at the end of the epoch (before this hook's turn) start on their own
            self._finish()

    def _finish(self) -> None:
        if self._bar is not None:
            self._stream.write('\n')
            self._stream.flush()
        self._bar = None

    # -- hook points -----------------------------------------------------
    def before_val_epoch(self, runner) -> None:
        self._start('val', runner.val_dataloader)

    def after_val_iter(self, runner, batch_idx: int, data_batch: Any = None,
                       outputs: Any = None) -> None:
        self._step()

    def after_val_epoch(self, runner, metrics: Optional[dict] = None) -> None:
        self._finish()

    def before_test_epoch(self, runner) -> None:
        self._start('test', runner.test_dataloader)

    def after_test_iter(self, runner, batch_idx: int, data_batch: Any = None,
                        outputs: Any = None) -> None:
        self._step()

    def after_test_epoch(self, runner, metrics: Optional[dict] = None) -> None:
        self._finish()
