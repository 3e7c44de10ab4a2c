"""Optimizer pieces: the layer-wise learning-rate decay constructor and bf16
autocast on any device. (Freezing and locking happen when the model is built,
``mmfusion.models.adapters``: DDP and FSDP must see the final
``requires_grad`` flags when they wrap it.)"""
from .autocast import AutocastOptimWrapper, autocast_available
from .layer_decay import LayerDecayOptimWrapperConstructor

__all__ = ['AutocastOptimWrapper', 'LayerDecayOptimWrapperConstructor', 'autocast_available']
