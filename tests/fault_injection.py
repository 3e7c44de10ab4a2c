"""Faults injected into a real training run, for the crash-safety tests.

Imported by ``tools/train.py`` through the config's ``custom_imports`` (the
tests put ``tests/`` on ``PYTHONPATH``) and steered by two environment
variables, so the process under test is the real tool:

* ``MMFUSION_FAULT``:
  ``pause_save:epoch_2.pth`` - while the checkpoint ``epoch_2.pth`` is being
  written: cut the temporary file to half its size (as a crash mid-write
  leaves it), then wait to be killed;
  ``pause_iter:N`` - after training iteration N (1-based), wait to be killed;
  ``kill_rank:R:N`` - rank R kills itself (SIGKILL) after iteration N;
  ``nan_loss:N`` - the head's output becomes NaN in iteration N.
* ``MMFUSION_FAULT_MARKER``: a file created when the fault point is reached,
  so the test knows when to strike.
"""
import os
import signal
import time

from mmengine.hooks import Hook

from mmfusion.registry import HOOKS

FAULT = os.environ.get('MMFUSION_FAULT', '')
MARKER = os.environ.get('MMFUSION_FAULT_MARKER', '')


def _reached() -> None:
    with open(MARKER, 'w') as f:
        f.write(str(os.getpid()))


def _wait_to_be_killed() -> None:
    _reached()
    time.sleep(600)
    raise SystemExit('fault injection: not killed within 600 s')


if FAULT.startswith('pause_save:'):
    target = FAULT.split(':', 1)[1]
    real_fsync = os.fsync

    def fsync_then_pause(fd: int) -> None:
        """Pause inside mmfusion's atomic write of ``target``, before the rename."""
        path = os.readlink(f'/proc/self/fd/{fd}') if os.path.exists('/proc/self/fd') else ''
        name = os.path.basename(path)
        if name.startswith(f'.{target}.') and name.endswith('.tmp'):
            os.ftruncate(fd, os.fstat(fd).st_size // 2)
            _wait_to_be_killed()
        real_fsync(fd)

    os.fsync = fsync_then_pause


@HOOKS.register_module()
class FaultInjectionHook(Hook):
    """The iteration-triggered faults described in the module docstring."""

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        if FAULT.startswith('nan_loss:') and runner.iter + 1 == int(FAULT.split(':')[1]):
            model = getattr(runner.model, 'module', runner.model)
            handle = model.head.register_forward_hook(
                lambda module, args, out: out * float('nan'))
            self._nan_handle = handle

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        step = runner.iter + 1  # runner.iter counts completed iterations before this one
        if hasattr(self, '_nan_handle'):
            self._nan_handle.remove()
            del self._nan_handle
        if FAULT.startswith('pause_iter:') and step == int(FAULT.split(':')[1]):
            _wait_to_be_killed()
        if FAULT.startswith('kill_rank:'):
            _, rank, at = FAULT.split(':')
            if runner.rank == int(rank) and step == int(at):
                _reached()
                os.kill(os.getpid(), signal.SIGKILL)
