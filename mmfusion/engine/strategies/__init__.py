"""Training strategies for MMEngine's ``FlexibleRunner``: FSDP2, DeepSpeed ZeRO."""
from .deepspeed import DeepSpeedStrategy
from .fsdp2 import FSDP2Strategy

__all__ = ['DeepSpeedStrategy', 'FSDP2Strategy']
