"""Layer groups of an encoder: its parameters from the input side to the output side.

Layer-wise learning-rate decay (BEiT, Bao et al., ICLR 2022; "layer decay"
of open_clip and mmpretrain) and "lock a tower but unlock its last N
groups" (LiT, Zhai et al., CVPR 2022; open_clip's ``--lock-image-unlocked-groups``)
both need to know which parameters sit how deep in a network. One function
answers that for every tower, so the optimizer constructor and the freezing
code agree on what a "group" is.
"""
from typing import List

import torch.nn as nn


def _timm_groups(model: nn.Module, prefix: str) -> List[List[str]]:
    """Groups from timm's own ``group_matcher`` (stem, then each block): the
    split timm and open_clip use for layer decay and locking."""
    from timm.models import group_parameters

    groups = group_parameters(model, model.group_matcher(coarse=False))
    return [[prefix + n for n in names] for _, names in sorted(groups.items())]


def _longest_module_list(module: nn.Module) -> str:
    """Path of the ``nn.ModuleList`` with the most entries (the stack of
    transformer or residual blocks), or '' when there is none."""
    best, size = '', 1
    for name, child in module.named_modules():
        if isinstance(child, nn.ModuleList) and len(child) > size:
            best, size = name, len(child)
    return best


def layer_groups(module: nn.Module) -> List[List[str]]:
    """Names of ``module``'s parameters (as ``module.named_parameters()``
    spells them) in groups, input side first.

    * a timm model (or an encoder keeping one in ``.model``) with a
      ``group_matcher``: timm's fine groups: stem / patch embedding, one
      group per block (ViT block, ResNet bottleneck; timm puts the final norm
      with the last block);
    * anything else (Hugging Face BERT-style ``encoder.layer``, DistilBERT
      ``transformer.layer``, the token fusions' block lists): the longest
      ``nn.ModuleList`` gives one group per entry; parameters registered
      before it (embeddings) form the first group and those after it (final
      norm, projections) the last;
    * no block list: one group with everything.

    Empty groups are dropped, so ``len(result)`` is the number of groups.
    """
    inner = getattr(module, 'model', None)
    if isinstance(inner, nn.Module) and hasattr(inner, 'group_matcher'):
        groups = _timm_groups(inner, 'model.')
        covered = {n for g in groups for n in g}
        rest = [n for n, _ in module.named_parameters() if n not in covered]
        if rest:  # the encoder's own parameters sit on top of the timm model
            groups.append(rest)
        return [g for g in groups if g]
    if hasattr(module, 'group_matcher'):
        return [g for g in _timm_groups(module, '') if g]

    blocks = _longest_module_list(module)
    names = [n for n, _ in module.named_parameters()]
    if not blocks:
        return [names] if names else []
    size = len(module.get_submodule(blocks))
    before: List[str] = []
    inside: List[List[str]] = [[] for _ in range(size)]
    after: List[str] = []
    seen_blocks = False
    for name in names:
        if name.startswith(blocks + '.'):
            index = int(name[len(blocks) + 1:].split('.', 1)[0])
            inside[index].append(name)
            seen_blocks = True
        elif seen_blocks:
            after.append(name)
        else:
            before.append(name)
    return [g for g in [before, *inside, after] if g]


__all__ = ['layer_groups']
