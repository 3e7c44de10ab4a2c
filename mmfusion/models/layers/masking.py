"""Masks: padding tokens and missing modalities.

Two kinds of mask meet here. Token masks are BoolTensors (B, N), True for a
real (non-padding) token. Modality masks are dicts ``{modality: BoolTensor
(B,)}``, False where that modality is missing for a sample; a modality absent
from the dict is present everywhere. Every helper keeps whatever a padding
token or a missing sample holds (even NaN or inf) out of both the output and
the gradients.
"""
import functools
import operator
from collections.abc import Callable, Sequence
from typing import Protocol

import torch


class HasModalities(Protocol):
    """What the per-modality helpers need of a fusion module: its modality
    names, in order. Its class name is used in error messages."""
    modalities: list[str]


def masked_mean(tokens: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean over the token axis of ``tokens`` (B, N, D), ignoring padding.

    Args:
        tokens: Tensor (B, N, D).
        mask: BoolTensor (B, N), True for real tokens; ``None``: all real.

    Returns:
        Tensor (B, D). A sample without any real token gets zeros.
    """
    if mask is None:
        return tokens.mean(dim=1)
    weights = mask.to(tokens.dtype).unsqueeze(-1)
    return (tokens * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


def masked_softmax(logits: torch.Tensor, present: torch.Tensor, dim: int) -> torch.Tensor:
    """Softmax over the present entries only; missing entries get exactly 0.

    Args:
        logits: Tensor of any shape.
        present: BoolTensor broadcastable to ``logits``, True for entries that count.
        dim: the axis of the softmax.

    Returns:
        Tensor shaped like ``logits``; along ``dim`` it sums to 1 over the
        present entries, or is all 0 where none is present.

    The most negative finite value instead of -inf, so that a slice with no
    present entry gives a uniform softmax rather than NaN, which the
    multiplication by the mask then turns into zeros.
    """
    logits = logits.masked_fill(~present, torch.finfo(logits.dtype).min)
    return logits.softmax(dim=dim) * present.to(logits.dtype)


def key_padding_bias(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Additive attention bias (B, N) from a bool mask (B, N), True = real key.

    Padding keys get the most negative finite value instead of -inf: next to
    any real key their softmax weight underflows to exactly 0, and a row whose
    keys are all padding softmaxes to a finite uniform row (which the callers
    zero) instead of NaN.
    """
    bias = torch.zeros(mask.shape, dtype=dtype, device=mask.device)
    return bias.masked_fill(~mask, torch.finfo(dtype).min)


def token_mask(tokens: torch.Tensor, masks: dict[str, torch.Tensor] | None,
               name: str, owner: str) -> torch.Tensor:
    """The (B, N) bool mask of modality ``name`` from ``masks``; all True when none is given.

    Args:
        tokens: the modality's tokens, Tensor (B, N, D).
        masks: optional modality -> BoolTensor (B, N), True for real tokens.
        name: the modality.
        owner: named in the error raised for a mask of the wrong shape.
    """
    mask = None if masks is None else masks.get(name)
    if mask is None:
        return torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
    if mask.shape != tokens.shape[:2]:
        raise ValueError(f'{owner}: masks[{name!r}] must have shape '
                         f'{tuple(tokens.shape[:2])}, got {tuple(mask.shape)}')
    return mask.to(device=tokens.device, dtype=torch.bool)


def masked_tokens(tokens: torch.Tensor, masks: dict[str, torch.Tensor] | None,
                  name: str, owner: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The tokens (B, N, D) of modality ``name`` with padding zeroed, and their (B, N) mask.

    Arguments as :func:`token_mask`. Zeroing the padding first means that
    whatever it holds (even NaN) cannot leak through a 0 * x product into the
    output or the gradients.
    """
    mask = token_mask(tokens, masks, name, owner)
    return tokens.masked_fill(~mask.unsqueeze(-1), 0.0), mask


def present_mask(fusion: HasModalities, feats: dict[str, torch.Tensor],
                 mask: dict[str, torch.Tensor] | None) -> torch.Tensor:
    """The (B, M) bool presence matrix, columns in ``fusion.modalities`` order.

    Args:
        fusion: gives the modalities (M of them) and the name in errors.
        feats: modality -> Tensor (B, D_m).
        mask: optional modality -> BoolTensor (B,), False where it is missing.
    """
    owner = type(fusion).__name__
    mask = mask or {}
    columns = []
    for name in fusion.modalities:
        x = feats[name]
        present = mask.get(name)
        if present is None:
            present = torch.ones(x.shape[:1], dtype=torch.bool, device=x.device)
        elif present.shape != x.shape[:1]:
            raise ValueError(f'{owner}: mask[{name!r}] must have shape ({x.shape[0]},), '
                             f'got {tuple(present.shape)}')
        columns.append(present.to(device=x.device, dtype=torch.bool))
    return torch.stack(columns, dim=1)


def fill_missing(x: torch.Tensor, present: torch.Tensor | None,
                 fill: float, name: str, owner: str) -> torch.Tensor:
    """Replace the rows of ``x`` (B, D) whose ``present`` (B,) entry is False by ``fill``.

    ``name`` and ``owner`` are named in the error raised for a mask of the
    wrong shape. ``torch.where`` rather than a multiplication, so that NaN or
    inf in the features of a missing sample cannot leak into the output or the
    gradient.
    """
    if present is None:
        return x
    if present.shape != x.shape[:1]:
        raise ValueError(f'{owner}: mask[{name!r}] must have shape ({x.shape[0]},), '
                         f'got {tuple(present.shape)}')
    present = present.to(device=x.device, dtype=torch.bool).unsqueeze(-1)
    return torch.where(present, x, torch.full_like(x, fill))


def zero_missing(fusion: HasModalities, feats: dict[str, torch.Tensor],
                 mask: dict[str, torch.Tensor] | None,
                 names: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
    """``{m: x_m}`` for the modalities ``names`` (default: all, in order), each
    (B, D_m) with the rows of the samples that miss m set to 0."""
    owner = type(fusion).__name__
    mask = mask or {}
    return {name: fill_missing(feats[name], mask.get(name), 0.0, name, owner)
            for name in (fusion.modalities if names is None else names)}


def masked_outputs(fusion: HasModalities, feats: dict[str, torch.Tensor],
                   mask: dict[str, torch.Tensor] | None,
                   fn: Callable[[str, torch.Tensor], torch.Tensor], fill: float = 0.0,
                   names: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
    """``{m: fn(m, x_m)}`` for the modalities ``names`` (default: all, in order).

    ``feats`` maps modality -> Tensor (B, D_m); each output has the shape
    ``fn`` gives it, batch first. For a sample where modality m is missing,
    its input is zeroed before ``fn`` (the weight gradient multiplies the
    input, so NaN there would reach it) and its output is replaced by
    ``fill`` (so a bias does not count either).
    """
    owner = type(fusion).__name__
    mask = mask or {}
    inputs = zero_missing(fusion, feats, mask, names)
    return {name: fill_missing(fn(name, x), mask.get(name), fill, name, owner)
            for name, x in inputs.items()}


def masked_product(fusion: HasModalities, feats: dict[str, torch.Tensor],
                   mask: dict[str, torch.Tensor] | None,
                   factor: Callable[[str, torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Element-wise product over modalities of ``factor(name, x)``, each (B, K) -> (B, K).

    A missing modality (``mask[name]`` False for a sample) contributes ones,
    the identity of the product, so it drops out; its input is zeroed first
    (see :func:`masked_outputs`).
    """
    # reduce, not math.prod: math.prod starts from the integer 1, which costs one
    # more full-size multiply (and saved tensor) in forward and backward
    return functools.reduce(operator.mul,
                            masked_outputs(fusion, feats, mask, factor, fill=1.0).values())
