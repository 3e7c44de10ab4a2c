"""Pruning with ``torch.nn.utils.prune``, a short fine-tune, and the real speed effect.

Two kinds, both choosing what to remove by weight magnitude through
``torch.nn.utils.prune``:

* **unstructured** (:func:`prune_unstructured`): the smallest-magnitude
  weights of every ``Conv2d`` and ``Linear``, ranked globally (Han et al.,
  "Learning both Weights and Connections for Efficient Neural Networks",
  NeurIPS 2015). The tensors keep their shape, so dense kernels run exactly
  as fast as before: the gain is only in a sparse/compressed storage format.
* **structured** (:func:`prune_channels`): whole channels and hidden units,
  ranked by L2 norm (``prune.ln_structured``; Li et al., "Pruning Filters
  for Efficient ConvNets", ICLR 2017), then *physically removed*, so the
  layers shrink and the model really computes less:

  - the inner channels of every residual block with ``conv1 -> bn1 -> conv2``
    (timm's ``BasicBlock``): the block's output width, which the shortcut
    fixes, stays;
  - the hidden units of a low-rank bilinear fusion with a ``proj``
    ``ModuleDict`` of ``Linear`` layers whose outputs are multiplied
    element-wise and an ``out`` ``Linear`` (``MLBFusion``): removing unit h
    equals zeroing column h of ``out``.

  Attention heads are pruned the same way where a model has them; the
  quick-start VQA and audio-visual models have none.

:func:`finetune` then trains a few iterations on the training set (the
pruning masks stay applied, so pruned weights stay zero), and
:func:`pruning_table` measures every variant side by side.

Distillation (a small student trained against a large teacher) is a
training strategy, not a post-training tool: see ``configs/distillation/``.
"""
import copy
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.utils.prune as prune

from .evaluation import ValSet, param_bytes, torch_runner
from .quantization import measure

PRUNABLE = (nn.Conv2d, nn.Linear)


def _prunable(model: nn.Module) -> List[tuple]:
    return [(m, 'weight') for m in model.modules() if isinstance(m, PRUNABLE)]


def prune_unstructured(model: nn.Module, amount: float) -> nn.Module:
    """Zero the ``amount`` fraction of smallest |w| over all Conv2d/Linear weights (in place).

    The masks stay as ``torch.nn.utils.prune`` re-parametrisations (so a
    fine-tune keeps them) until :func:`make_permanent`.
    """
    if not 0.0 <= amount < 1.0:
        raise ValueError(f'prune_unstructured: amount must be in [0, 1), got {amount}')
    prune.global_unstructured(_prunable(model), pruning_method=prune.L1Unstructured,
                              amount=amount)
    return model


def make_permanent(model: nn.Module) -> nn.Module:
    """Bake every pruning mask into its weight (``prune.remove``)."""
    for module in model.modules():
        for name in [n for n, hook in _pruning_hooks(module)]:
            prune.remove(module, name)
    return model


def _pruning_hooks(module: nn.Module):
    for hook in list(module._forward_pre_hooks.values()):
        if isinstance(hook, prune.BasePruningMethod):
            yield hook._tensor_name, hook


def sparsity(model: nn.Module) -> float:
    """Fraction of zero weights over all Conv2d/Linear weights."""
    total = zeros = 0
    for module, _ in _prunable(model):
        weight = module.weight
        total += weight.numel()
        zeros += int((weight == 0).sum())
    return zeros / max(total, 1)


def _keep_indices(weight: torch.Tensor, amount: float, dim: int) -> torch.Tensor:
    """Indices along ``dim`` that ``prune.ln_structured`` (L2) keeps at ``amount``."""
    holder = nn.Module()
    holder.weight = nn.Parameter(weight.detach().clone())
    prune.ln_structured(holder, 'weight', amount=amount, n=2, dim=dim)
    mask = holder.weight_mask
    other = [d for d in range(mask.ndim) if d != dim]
    alive = mask.amax(dim=other) > 0 if other else mask > 0
    return alive.nonzero().flatten()


def _slice_param(param: Optional[torch.Tensor], index: torch.Tensor, dim: int):
    if param is None:
        return None
    return nn.Parameter(param.detach().index_select(dim, index).clone(),
                        requires_grad=param.requires_grad)


def _shrink_block(block: nn.Module, amount: float) -> int:
    """Remove inner channels of a conv1 -> bn1 -> conv2 block; returns how many."""
    conv1, bn1, conv2 = block.conv1, block.bn1, block.conv2
    keep = _keep_indices(conv1.weight, amount, dim=0)
    removed = conv1.out_channels - keep.numel()
    if removed == 0:
        return 0
    conv1.weight = _slice_param(conv1.weight, keep, 0)
    conv1.bias = _slice_param(conv1.bias, keep, 0)
    conv1.out_channels = keep.numel()
    for name in ('weight', 'bias'):
        setattr(bn1, name, _slice_param(getattr(bn1, name), keep, 0))
    bn1.running_mean = bn1.running_mean.index_select(0, keep).clone()
    bn1.running_var = bn1.running_var.index_select(0, keep).clone()
    bn1.num_features = keep.numel()
    conv2.weight = _slice_param(conv2.weight, keep, 1)
    conv2.in_channels = keep.numel()
    return removed


def _shrink_bilinear(fusion: nn.Module, amount: float) -> int:
    """Remove hidden units of a proj (ModuleDict of Linear) -> product -> out fusion."""
    out = fusion.out
    keep = _keep_indices(out.weight, amount, dim=1)
    removed = out.in_features - keep.numel()
    if removed == 0:
        return 0
    out.weight = _slice_param(out.weight, keep, 1)
    out.in_features = keep.numel()
    for linear in fusion.proj.values():
        linear.weight = _slice_param(linear.weight, keep, 0)
        linear.bias = _slice_param(linear.bias, keep, 0)
        linear.out_features = keep.numel()
    return removed


def _is_block(module: nn.Module) -> bool:
    return all(isinstance(getattr(module, n, None), t) for n, t in
               (('conv1', nn.Conv2d), ('bn1', nn.BatchNorm2d), ('conv2', nn.Conv2d)))


def _is_bilinear(module: nn.Module) -> bool:
    proj, out = getattr(module, 'proj', None), getattr(module, 'out', None)
    return (isinstance(proj, nn.ModuleDict) and isinstance(out, nn.Linear) and len(proj) > 0
            and all(isinstance(p, nn.Linear) and p.out_features == out.in_features
                    for p in proj.values()))


def prune_channels(model: nn.Module, amount: float) -> Dict[str, int]:
    """Physically remove the ``amount`` fraction of lowest-L2 channels/units (in place).

    Returns:
        module name -> number of channels (or hidden units) removed.
    """
    if not 0.0 <= amount < 1.0:
        raise ValueError(f'prune_channels: amount must be in [0, 1), got {amount}')
    removed = {}
    for name, module in list(model.named_modules()):
        if _is_block(module):
            removed[name] = _shrink_block(module, amount)
        elif _is_bilinear(module):
            removed[name] = _shrink_bilinear(module, amount)
    return removed


def finetune(model: nn.Module, cfg, iters: int, lr: float = 1e-4, seed: int = 0) -> nn.Module:
    """A few training iterations on the config's training set (AdamW), in place.

    Pruning masks of :func:`prune_unstructured` stay applied, so pruned
    weights stay zero. Returns the model in eval mode.
    """
    if iters <= 0:
        return model.eval()
    from mmengine.optim import OptimWrapper
    from mmengine.runner import Runner

    torch.manual_seed(seed)
    loader_cfg = copy.deepcopy(cfg.train_dataloader)
    loader_cfg.update(num_workers=0, persistent_workers=False)
    loader = Runner.build_dataloader(loader_cfg, seed=seed)
    params = [p for p in model.parameters() if p.requires_grad]
    wrapper = OptimWrapper(torch.optim.AdamW(params, lr=lr, weight_decay=0.0))
    model.train()
    done = 0
    while done < iters:
        for data in loader:
            model.train_step(data, wrapper)
            done += 1
            if done >= iters:
                break
    return model.eval()


def pruning_table(model: nn.Module, cfg, unstructured: Sequence[float] = (0.5, 0.7, 0.9),
                  structured: Sequence[float] = (0.25, 0.5), finetune_iters: int = 50,
                  lr: float = 1e-4, num_threads: int = 1, repeats: int = 20,
                  max_val_samples: Optional[int] = None,
                  out_dir: Optional[str] = None) -> List[dict]:
    """Prune copies of ``model`` at each sparsity, fine-tune each, and measure all.

    Every variant, the original included, runs in eager PyTorch with
    ``num_threads`` threads; accuracy on the val set, latency at batch 1 and
    32 measured interleaved, size as dense fp32 bytes (the unstructured
    variants' zeros still take space there, so their non-zero fraction is in
    the name). Writes ``out_dir/pruning.md`` when ``out_dir`` is given.
    """
    torch.set_num_threads(num_threads)
    model = model.eval()
    val = ValSet(cfg, model, max_samples=max_val_samples)
    variants = {'original': torch_runner(model)}
    sizes = {'original': param_bytes(model)}
    keep_alive = [model]
    for amount in unstructured:
        pruned = prune_unstructured(copy.deepcopy(model), amount)
        make_permanent(finetune(pruned, cfg, finetune_iters, lr))
        name = f'unstructured {amount:.0%} (non-zero {1 - sparsity(pruned):.0%})'
        variants[name], sizes[name] = torch_runner(pruned), param_bytes(pruned)
        keep_alive.append(pruned)
    for amount in structured:
        pruned = copy.deepcopy(model)
        prune_channels(pruned, amount)
        finetune(pruned, cfg, finetune_iters, lr)
        name = f'channels {amount:.0%}'
        variants[name], sizes[name] = torch_runner(pruned), param_bytes(pruned)
        keep_alive.append(pruned)
    return measure(variants, sizes, val, repeats, out_dir,
                   title=(f'pruning + {finetune_iters}-iteration fine-tune, eager PyTorch, '
                          f'{num_threads} CPU thread(s)'),
                   file_name='pruning.md')


__all__ = ['finetune', 'make_permanent', 'prune_channels', 'prune_unstructured',
           'pruning_table', 'sparsity']
