from .checkpoint import (
    AtomicLocalBackend,
    CheckpointHook,
    PlainCheckpointHook,
    atomic_write,
    checkpoint_safe_globals,
    from_plain,
    load_checkpoint_file,
    to_plain,
    use_safe_checkpoint_io,
)
from .hooks import *  # noqa: F401,F403

__all__ = ['AtomicLocalBackend', 'CheckpointHook', 'PlainCheckpointHook', 'atomic_write',
           'checkpoint_safe_globals', 'from_plain', 'load_checkpoint_file', 'to_plain',
           'use_safe_checkpoint_io']
