"""Hooks that make runs reproducible and self-describing."""
import random

import numpy as np
import torch
from mmengine.dist import get_rank, is_main_process
from mmengine.hooks import Hook

from mmfusion.registry import HOOKS


@HOOKS.register_module()
class EpochSeedHook(Hook):
    """Reseed Python, NumPy and torch at the start of every training epoch.

    MMEngine seeds the RNGs once, when the runner starts, so a resumed run
    draws different random numbers (dropout, augmentation) from the run it
    continues: the validation it skipped, for one, consumed some. Seeding
    each epoch from ``(seed, epoch, rank)`` makes epoch ``e`` identical
    whether or not the run was interrupted before it.
    """
    priority = 'VERY_HIGH'

    def before_train_epoch(self, runner) -> None:
        base = runner.seed if runner.seed is not None else 0
        seed = (base + 1_000_003 * runner.epoch + 7919 * get_rank()) % (2**31)
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)  # also seeds every CUDA device


@HOOKS.register_module()
class SaveVocabularyHook(Hook):
    """Write the run's vocabularies (tokenizers, answer list) into the work dir.

    Any module of the model with a ``save_vocabulary(out_dir)`` method is
    asked to write its files, once, before training; checkpoints carry the
    same vocabularies in their state dict, so these files are for people and
    other tools.
    """

    def before_train(self, runner) -> None:
        if not is_main_process():
            return
        model = runner.model.module if hasattr(runner.model, 'module') else runner.model
        for module in model.modules():
            save = getattr(module, 'save_vocabulary', None)
            if callable(save):
                save(runner.work_dir)
