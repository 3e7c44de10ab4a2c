"""Fine-tuning of pretrained parts from config: ``peft`` adapters (LoRA, IA3),
freezing by name pattern, locking with unlocked last groups, gradient
checkpointing and trainable-only checkpoints (see :mod:`.fine_tune`)."""
from .fine_tune import (
    DIGEST_KEY,
    FINE_TUNE_KEYS,
    TrainableOnlyState,
    apply_fine_tuning,
    apply_peft,
    build_fine_tuned,
    build_peft_config,
    enable_grad_checkpointing,
    frozen_digest,
    lock,
    merge_adapters,
    require_peft,
    set_trainable,
    trainable_summary,
)

__all__ = ['DIGEST_KEY', 'FINE_TUNE_KEYS', 'TrainableOnlyState', 'apply_fine_tuning',
           'apply_peft', 'build_fine_tuned', 'build_peft_config', 'enable_grad_checkpointing',
           'frozen_digest', 'lock', 'merge_adapters', 'require_peft', 'set_trainable',
           'trainable_summary']
