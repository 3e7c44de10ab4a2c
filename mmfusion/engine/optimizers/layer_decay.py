"""Layer-wise learning-rate decay, a rate per tower."""
from typing import Dict, List, Optional

import torch.nn as nn
from mmengine.logging import print_log
from mmengine.optim import DefaultOptimWrapperConstructor

from mmfusion.errors import ConfigError
from mmfusion.models.layers import layer_groups
from mmfusion.registry import OPTIM_WRAPPER_CONSTRUCTORS

KEY = 'optim_wrapper.paramwise_cfg.layer_decay'


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class LayerDecayOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """MMEngine's default constructor plus layer-wise learning-rate decay.

    Layer decay as in BEiT (Bao et al., "BEiT: BERT Pre-Training of Image
    Transformers", ICLR 2022) and ELECTRA: the layers near the input of a
    pretrained tower learn slower than those near its output. A tower whose
    parameters fall into G layer groups (:func:`mmfusion.models.layers.layer_groups`:
    timm's own grouping for timm models, the block list for Hugging Face
    BERT-style models and the fusions, stem and stages for ResNets) gets the
    learning-rate multiplier ``rate ** (G - 1 - g)`` for group g (0 = input
    side): its last group trains at the base rate, its embeddings at
    ``rate ** (G - 1)``. Everything outside the listed towers (fusion, head)
    keeps the base rate. One rate per tower, as open_clip's
    ``--image-layer-decay`` / ``--text-layer-decay`` (mmpretrain's
    constructor has a single rate for its one backbone).

    Config::

        optim_wrapper = dict(
            optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05),
            constructor='LayerDecayOptimWrapperConstructor',
            paramwise_cfg=dict(layer_decay=dict(image=0.65, text=0.8),
                               norm_decay_mult=0.0, bias_decay_mult=0.0))

    ``layer_decay`` keys are encoder names (``model.encoders.<name>``) or
    module paths of the model (``'fusion'``); rates are in (0, 1] (1: no
    decay). The other ``paramwise_cfg`` keys are MMEngine's and combine
    with the decay (their ``lr_mult`` multiplies it). Input: the model;
    output: an ``OptimWrapper`` with one parameter group per parameter.
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: Optional[dict] = None) -> None:
        paramwise_cfg = dict(paramwise_cfg or {})
        decay = paramwise_cfg.pop('layer_decay', None) or {}
        if not isinstance(decay, dict):
            raise ConfigError(f'{KEY} must map tower names to rates, e.g. '
                              f'dict(image=0.65, text=0.8), got {decay!r}')
        for name, rate in decay.items():
            if isinstance(rate, bool) or not isinstance(rate, (int, float)) \
                    or not 0 < rate <= 1:
                raise ConfigError(f'{KEY}.{name}={rate!r}: a layer-decay rate must be in '
                                  '(0, 1] (1 = no decay; 0.65-0.9 is usual)')
        self.layer_decay: Dict[str, float] = {k: float(v) for k, v in decay.items()}
        # MMEngine hands the whole model to the optimizer (no per-parameter groups)
        # when paramwise_cfg is empty; an empty custom_keys keeps the per-parameter path
        paramwise_cfg.setdefault('custom_keys', {})
        super().__init__(optim_wrapper_cfg, paramwise_cfg)
        self.lr_scales: Dict[str, float] = {}

    def _tower(self, model: nn.Module, name: str) -> str:
        """The module path of a ``layer_decay`` key."""
        encoders = getattr(model, 'encoders', None)
        if isinstance(encoders, nn.ModuleDict) and name in encoders:
            return f'encoders.{name}'
        try:
            model.get_submodule(name)
        except AttributeError:
            towers = sorted(encoders) if isinstance(encoders, nn.ModuleDict) else []
            raise ConfigError(f'{KEY}.{name}: the model has no encoder or submodule {name!r} '
                              f'(its encoders: {towers})') from None
        return name

    def layer_scales(self, model: nn.Module) -> Dict[str, float]:
        """Parameter name -> learning-rate multiplier from layer decay."""
        scales: Dict[str, float] = {}
        for name, rate in self.layer_decay.items():
            path = self._tower(model, name)
            groups = layer_groups(model.get_submodule(path))
            for g, names in enumerate(groups):
                scale = rate ** (len(groups) - 1 - g)
                for param_name in names:
                    scales[f'{path}.{param_name}'] = scale
            print_log(f'layer decay {rate} on {path}: {len(groups)} groups, learning-rate '
                      f'multipliers {rate ** (len(groups) - 1):.4g} ... 1', logger='current')
        return scales

    def add_params(self, params: List[dict], module: nn.Module, prefix: str = '',
                   **kwargs) -> None:
        super().add_params(params, module, prefix=prefix, **kwargs)
        if prefix:  # MMEngine recurses through add_params; scale once, at the top
            return
        self.lr_scales = self.layer_scales(module)
        names = {id(p): n for n, p in module.named_parameters()}
        for group in params:
            name = names.get(id(group['params'][0]))
            scale = self.lr_scales.get(name, 1.0)
            if scale != 1.0:
                group['lr'] = group.get('lr', self.base_lr) * scale


__all__ = ['LayerDecayOptimWrapperConstructor']
