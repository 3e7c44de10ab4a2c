"""Necks: refine an encoder's multi-scale maps (e.g. FPN) before spatial fusion."""
from .fpn import FPN

__all__ = ['FPN']
