"""Training strategies for MMEngine's ``FlexibleRunner``: FSDP2 sharded data parallel."""
from .fsdp2 import FSDP2Strategy

__all__ = ['FSDP2Strategy']
