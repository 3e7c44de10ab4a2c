"""Reporting the training samples the corrupt-sample policy skipped."""
from typing import Any, Optional

import torch
from mmengine.dist import all_reduce
from mmengine.hooks import Hook
from mmengine.structures import BaseDataElement

from mmfusion.datasets.base import BAD_SAMPLES_SKIPPED_KEY
from mmfusion.registry import HOOKS


def count_skipped(data_batch: Any) -> int:
    """The number of bad samples skipped for one collated batch: the sum of
    ``bad_samples_skipped`` over its data samples' metainfo (0 where absent)."""
    samples = data_batch.get('data_samples') if isinstance(data_batch, dict) else None
    if isinstance(samples, BaseDataElement):
        samples = [samples]
    if not isinstance(samples, (list, tuple)):
        return 0
    # getattr, not ``s.metainfo.get``: ``metainfo`` builds a new dict of every
    # meta field, for each sample of every training step
    return sum(int(getattr(s, BAD_SAMPLES_SKIPPED_KEY, 0)) for s in samples
               if isinstance(s, BaseDataElement))


@HOOKS.register_module()
class BadSampleReportHook(Hook):
    """Count the training samples skipped by ``on_bad_sample='skip'`` and report them.

    The datasets record, in each returned data sample's metainfo, how many
    bad samples were skipped to fetch it (see
    :class:`~mmfusion.datasets.BaseMultiModalDataset`); the count travels with
    the batch, so it also arrives from data-loader worker processes. This hook
    sums it over each training epoch, adds it up across ranks, and, when it
    is not zero, logs ``epoch N: skipped K bad training samples`` as a
    warning. The message hub keeps the epoch's count under
    ``train/bad_samples_skipped`` and the run's under
    ``train/bad_samples_skipped_total``. A loop without epochs (iteration
    based) is reported once, when training ends.
    """
    priority = 'BELOW_NORMAL'

    def __init__(self) -> None:
        self._pending = 0  # skipped on this rank since the last report
        self._total = 0  # all ranks, whole run

    def before_train(self, runner) -> None:
        # a resumed run continues the total its checkpoint's message hub holds
        self._total = int(runner.message_hub.get_info('train/bad_samples_skipped_total', 0))

    def before_train_iter(self, runner, batch_idx: int, data_batch: Optional[dict] = None
                          ) -> None:
        # before the model sees the batch: the data preprocessor may replace its samples
        self._pending += count_skipped(data_batch)

    def after_train_epoch(self, runner) -> None:
        self._report(runner, f'epoch {runner.epoch + 1}')  # 1-based, as mmengine logs it

    def after_train(self, runner) -> None:
        # epoch-based loops have reported everything already; this sums to 0 there
        self._report(runner, f'iteration {runner.iter}', final=True)

    def _report(self, runner, when: str, final: bool = False) -> None:
        """All-reduce the pending count (every rank calls this), log it and
        record it in the message hub."""
        count = torch.tensor([self._pending], dtype=torch.int64)
        all_reduce(count, op='sum')
        skipped = int(count.item())
        self._pending = 0
        if final and skipped == 0:
            return
        self._total += skipped
        runner.message_hub.update_info('train/bad_samples_skipped', skipped)
        runner.message_hub.update_info('train/bad_samples_skipped_total', self._total)
        if skipped:
            runner.logger.warning(
                f"{when}: skipped {skipped} bad training samples (on_bad_sample='skip'; "
                f'{self._total} in this run so far); each was replaced by another sample '
                f'of the dataset. The dataset warnings name the samples and their errors')
