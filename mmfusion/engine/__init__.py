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
from .checkpoint_fit import (
    CheckpointFitHook,
    FitPretrainedInit,
    compare_state_dict,
    load_checkpoint_strict,
    load_state_dict_leniently,
)
from .hooks import *  # noqa: F401,F403
from .optimizers import *  # noqa: F401,F403
from .strategies import *  # noqa: F401,F403

__all__ = ['AtomicLocalBackend', 'CheckpointFitHook', 'CheckpointHook', 'FitPretrainedInit',
           'PlainCheckpointHook', 'atomic_write', 'checkpoint_safe_globals',
           'compare_state_dict', 'from_plain', 'load_checkpoint_file', 'load_checkpoint_strict',
           'load_state_dict_leniently', 'to_plain', 'use_safe_checkpoint_io']
