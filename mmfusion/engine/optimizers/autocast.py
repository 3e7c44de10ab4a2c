"""bf16 autocast on any device that has it, CPU included."""
from contextlib import contextmanager

import torch
import torch.nn as nn
from mmengine.optim import OptimWrapper

from mmfusion.errors import ConfigError
from mmfusion.registry import OPTIM_WRAPPERS

DTYPES = {'bfloat16': torch.bfloat16, 'float16': torch.float16}


def _device_type(model: nn.Module) -> str:
    param = next(model.parameters(), None)
    return param.device.type if param is not None else 'cpu'


def autocast_available(device_type: str, dtype: torch.dtype) -> bool:
    """Whether ``torch.autocast(device_type, dtype)`` runs here: bf16 on CPU
    and on GPUs that support it (Ampere and later)."""
    if device_type == 'cuda':
        return dtype != torch.bfloat16 or torch.cuda.is_bf16_supported()
    return torch.amp.is_autocast_available(device_type) and dtype == torch.bfloat16


@OPTIM_WRAPPERS.register_module()
class AutocastOptimWrapper(OptimWrapper):
    """MMEngine's ``OptimWrapper`` that runs the forward pass under
    ``torch.autocast`` in bf16 where the device supports it, and in float32
    elsewhere.

    MMEngine's ``AmpOptimWrapper`` refuses to start without a GPU and scales
    the loss for fp16; bf16 has float32's exponent range, so it needs no loss
    scaling, and CPUs run it too. The weights and the optimizer stay float32
    (mixed precision, Micikevicius et al., ICLR 2018).

    Args:
        dtype: ``'bfloat16'`` (default) or ``'float16'`` (GPU only; for fp16
            prefer ``AmpOptimWrapper``, which scales the loss).
        **kwargs: ``OptimWrapper``'s (``optimizer``, ``clip_grad``,
            ``accumulative_counts``).

    ``enabled_for(model)`` says whether autocast is on for the model's device.
    """

    def __init__(self, dtype: str = 'bfloat16', **kwargs) -> None:
        super().__init__(**kwargs)
        if dtype not in DTYPES:
            raise ConfigError(f"optim_wrapper.dtype must be one of {sorted(DTYPES)}, got "
                              f'{dtype!r}')
        self.dtype = DTYPES[dtype]

    def enabled_for(self, model: nn.Module) -> bool:
        return autocast_available(_device_type(model), self.dtype)

    @contextmanager
    def optim_context(self, model: nn.Module):
        with super().optim_context(model):
            device_type = _device_type(model)
            with torch.autocast(device_type, dtype=self.dtype,
                                enabled=autocast_available(device_type, self.dtype)):
                yield


__all__ = ['AutocastOptimWrapper', 'autocast_available']
