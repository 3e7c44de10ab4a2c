from .checkpoint import (
                         PlainCheckpointHook,
                         checkpoint_safe_globals,
                         from_plain,
                         register_checkpoint_safe_globals,
                         to_plain,
)
from .hooks import *  # noqa: F401,F403

__all__ = ['PlainCheckpointHook', 'checkpoint_safe_globals', 'from_plain',
           'register_checkpoint_safe_globals', 'to_plain']
