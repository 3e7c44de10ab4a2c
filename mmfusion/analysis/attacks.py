"""FGSM and PGD (L-inf and L2) on any continuous modality and on text embeddings.

Written here rather than taken from ``captum.robust.PGD`` because the inputs
are a dict of modalities that pass through the data preprocessor: the
perturbation lives in the raw input's units (pixels 0..255, the
spectrogram's values) with per-modality bounds, several modalities can be
attacked at once, text is attacked in its embedding space (a forward hook on
the embedding layer), the loss is the model's own training loss (so the same
attack serves classification, VQA, detection and segmentation), and the loss
of every step is returned so the attack can be checked.

Budgets: ``eps`` is a fraction of the modality's value range (255 for 8-bit
images, so ``eps=8/255`` is the usual "8 pixel levels"; max - min of the clean
batch for float inputs; max - min of the embedding matrix for text). Under L2
the absolute radius is ``eps * range * sqrt(D)`` for D values per sample, i.e.
``eps`` is the root-mean-square change per value.

References: Goodfellow et al., "Explaining and Harnessing Adversarial
Examples" (FGSM, ICLR 2015); Madry et al., "Towards Deep Learning Models
Resistant to Adversarial Attacks" (PGD, ICLR 2018).
"""
import contextlib
import copy
import math
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from mmfusion.errors import ConfigError

NORMS = ('linf', 'l2')


@dataclass
class AttackResult:
    """What :func:`pgd_attack` returns.

    Attributes:
        data: the raw batch with the attacked continuous modalities replaced
            by their perturbed values (float tensors, one per sample).
        text_deltas: modality -> (B, L, D) perturbation of the text embeddings
            (apply with :func:`perturb_embeddings`).
        deltas: modality -> the perturbation of every attacked modality, in
            the raw units, (B, ...).
        losses: the model's loss before each step and after the last one
            (``steps + 1`` values).
    """
    data: dict
    text_deltas: Dict[str, torch.Tensor] = field(default_factory=dict)
    deltas: Dict[str, torch.Tensor] = field(default_factory=dict)
    losses: List[float] = field(default_factory=list)


def embedding_layer(model: nn.Module, modality: str) -> nn.Embedding:
    """The token embedding layer of the ``modality`` encoder (a Hugging Face
    model's input embeddings, else the encoder's first ``nn.Embedding``)."""
    enc = model.encoders[modality]
    inner = getattr(enc, 'model', None)
    if inner is not None and hasattr(inner, 'get_input_embeddings'):
        return inner.get_input_embeddings()
    for module in enc.modules():
        if isinstance(module, nn.Embedding):
            return module
    raise ConfigError(f'the {modality} encoder ({type(enc).__name__}) has no nn.Embedding '
                      'to attack')


@contextlib.contextmanager
def perturb_embeddings(model: nn.Module, deltas: Dict[str, torch.Tensor],
                       replace: bool = False) -> Iterator[None]:
    """Add ``deltas[m]`` (B, L, D) to the token embeddings of modality ``m``
    (or, with ``replace=True``, use them instead) in every forward inside.

    A forward hook, removed on exit: outside the context the model is
    untouched.
    """
    handles = []
    for modality, delta in deltas.items():
        def hook(module, args, output, delta=delta):
            if output.shape != delta.shape:
                raise ValueError(f'embedding perturbation of shape {tuple(delta.shape)} for '
                                 f'embeddings of shape {tuple(output.shape)}')
            return delta if replace else output + delta
        handles.append(embedding_layer(model, modality).register_forward_hook(hook))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def stack_raw(values) -> torch.Tensor:
    """One modality of a collated raw batch as a float tensor (B, ...)."""
    if isinstance(values, torch.Tensor):
        return values.float()
    shapes = {tuple(v.shape) for v in values}
    if len(shapes) > 1:
        raise ConfigError(f'attacks need same-size inputs within a batch, got shapes {shapes}; '
                          'resize or pad in the test pipeline')
    return torch.stack([torch.as_tensor(v) for v in values]).float()


def value_range(x: torch.Tensor, original_dtype: Optional[torch.dtype] = None) -> float:
    """255 for 8-bit data, max - min otherwise (1 if constant)."""
    if original_dtype == torch.uint8:
        return 255.0
    span = float(x.max() - x.min())
    return span if span > 0 else 1.0


def _bounds(original_dtype: Optional[torch.dtype]) -> Tuple[Optional[float], Optional[float]]:
    # 8-bit pictures stay pictures: 0..255; float features are unbounded
    return (0.0, 255.0) if original_dtype == torch.uint8 else (None, None)


def _with_inputs(data: dict, replaced: Dict[str, torch.Tensor]) -> dict:
    out = dict(data)
    out['inputs'] = dict(data['inputs'])
    for m, x in replaced.items():
        # a list of per-sample tensors, so the preprocessor normalises them
        # as it does the loaded ones (and gradients flow through it)
        out['inputs'][m] = list(x.unbind(0))
    return out


def model_loss(model: nn.Module, data: dict) -> torch.Tensor:
    """The model's total training loss on a raw batch (summed loss terms)."""
    processed = model.data_preprocessor(data, False)
    losses = model(**processed, mode='loss')
    loss, _ = model.parse_losses(losses)
    return loss


def _project(delta: torch.Tensor, radius: float, norm: str) -> torch.Tensor:
    if norm == 'linf':
        return delta.clamp(-radius, radius)
    flat = delta.flatten(1)
    scale = (radius / flat.norm(dim=1).clamp_min(1e-12)).clamp(max=1.0)
    return (flat * scale[:, None]).view_as(delta)


def _step(grad: torch.Tensor, size: float, norm: str) -> torch.Tensor:
    if norm == 'linf':
        return size * grad.sign()
    flat = grad.flatten(1)
    return (size * flat / flat.norm(dim=1, keepdim=True).clamp_min(1e-12)).view_as(grad)


def _random_start(shape, radius: float, norm: str, gen: torch.Generator) -> torch.Tensor:
    if norm == 'linf':
        return (torch.rand(shape, generator=gen) * 2 - 1) * radius
    d = torch.randn(shape, generator=gen).flatten(1)
    d = d / d.norm(dim=1, keepdim=True).clamp_min(1e-12)
    r = torch.rand(shape[0], 1, generator=gen) ** (1.0 / d.shape[1])
    return (d * r * radius).view(shape)


def pgd_attack(model: nn.Module, data: dict, modalities: Sequence[str], eps: float,
               steps: int = 10, step_size: Optional[float] = None, norm: str = 'linf',
               random_start: bool = True, seed: int = 0) -> AttackResult:
    """Projected gradient ascent on the model's loss (FGSM: ``steps=1``,
    ``step_size=eps``, ``random_start=False``; see :func:`fgsm_attack`).

    Args:
        model: an mmfusion model (``data_preprocessor``, ``mode='loss'``).
        data: a collated raw batch (``{'inputs': {...}, 'data_samples': [...]}``).
        modalities: which inputs to perturb together; text modalities (those
            whose preprocessor has a tokenizer) are perturbed in embedding space.
        eps: budget as a fraction of each modality's range (module docstring).
        steps: gradient steps.
        step_size: per step, same units as ``eps`` (default ``2.5 * eps / steps``).
        norm: ``'linf'`` or ``'l2'``.
        random_start: start from a uniform point of the ball (Madry et al.).
        seed: for the random start.

    Returns:
        :class:`AttackResult`; the model's parameters are untouched and
        receive no gradient.
    """
    if norm not in NORMS:
        raise ConfigError(f'attack norm must be one of {NORMS}, got {norm!r}')
    if eps < 0 or steps < 1:
        raise ConfigError(f'attack needs eps >= 0 and steps >= 1, got eps={eps}, steps={steps}')
    step_size = 2.5 * eps / steps if step_size is None else step_size
    tokenized = set(getattr(model.data_preprocessor, 'tokenizers', {}))
    gen = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device

    base, radius, alpha, lower, upper, deltas = {}, {}, {}, {}, {}, {}
    text_shapes = {}
    if any(m in tokenized for m in modalities):
        with torch.no_grad():
            processed = model.data_preprocessor(data, False)
    for m in modalities:
        if m not in data['inputs']:
            raise ConfigError(f'cannot attack modality {m!r}: the batch has '
                              f'{sorted(data["inputs"])}')
        if m in tokenized:
            emb = embedding_layer(model, m)
            ids = processed['inputs'][m]['input_ids']
            shape = (*ids.shape, emb.embedding_dim)
            text_shapes[m] = shape
            span = float(emb.weight.max() - emb.weight.min()) or 1.0
            lower[m] = upper[m] = None
        else:
            values = data['inputs'][m]
            dtype = values[0].dtype if not isinstance(values, torch.Tensor) else values.dtype
            base[m] = stack_raw(values).to(device)
            shape = tuple(base[m].shape)
            span = value_range(base[m], dtype)
            lower[m], upper[m] = _bounds(dtype)
        per_sample = math.prod(shape[1:])
        scale = span * (math.sqrt(per_sample) if norm == 'l2' else 1.0)
        radius[m], alpha[m] = eps * scale, step_size * scale
        deltas[m] = (_random_start(shape, radius[m], norm, gen).to(device)
                     if random_start and eps > 0 else torch.zeros(shape, device=device))

    def clip(m: str, d: torch.Tensor) -> torch.Tensor:
        d = _project(d, radius[m], norm)
        if m in base and lower[m] is not None:
            d = (base[m] + d).clamp(lower[m], upper[m]) - base[m]
        return d

    deltas = {m: clip(m, d) for m, d in deltas.items()}

    def loss_of(ds: Dict[str, torch.Tensor]) -> torch.Tensor:
        batch = _with_inputs(data, {m: base[m] + ds[m] for m in base})
        with perturb_embeddings(model, {m: ds[m] for m in text_shapes}):
            return model_loss(model, batch)

    # gradients for the perturbation only, never for the weights
    req = [p.requires_grad for p in model.parameters()]
    model.requires_grad_(False)
    losses = []
    try:
        for _ in range(steps):
            ds = {m: d.detach().requires_grad_(True) for m, d in deltas.items()}
            loss = loss_of(ds)
            losses.append(float(loss.detach()))
            grads = torch.autograd.grad(loss, list(ds.values()), allow_unused=True)
            with torch.no_grad():
                for (m, d), g in zip(ds.items(), grads):
                    g = torch.zeros_like(d) if g is None else g
                    deltas[m] = clip(m, d + _step(g, alpha[m], norm))
        with torch.no_grad():
            losses.append(float(loss_of(deltas)))
    finally:
        for p, r in zip(model.parameters(), req):
            p.requires_grad_(r)
    deltas = {m: d.detach() for m, d in deltas.items()}
    adv = _with_inputs(data, {m: (base[m] + deltas[m]) for m in base})
    return AttackResult(data=adv, text_deltas={m: deltas[m] for m in text_shapes},
                        deltas=deltas, losses=losses)


def fgsm_attack(model: nn.Module, data: dict, modalities: Sequence[str], eps: float,
                norm: str = 'linf') -> AttackResult:
    """One signed (L-inf) or normalised (L2) gradient step of size ``eps``."""
    return pgd_attack(model, data, modalities, eps, steps=1, step_size=eps, norm=norm,
                      random_start=False)


def clone_batch(data: dict) -> dict:
    """A copy of a raw batch whose inputs can be replaced without touching the original."""
    out = dict(data)
    out['inputs'] = dict(data['inputs'])
    out['data_samples'] = copy.deepcopy(data.get('data_samples'))
    return out


__all__ = ['AttackResult', 'NORMS', 'clone_batch', 'embedding_layer', 'fgsm_attack',
           'model_loss', 'perturb_embeddings', 'pgd_attack', 'stack_raw', 'value_range']
