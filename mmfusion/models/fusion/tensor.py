"""Tensor-decomposition fusion of pooled vectors: MUTAN, BLOCK, Tucker, TFN, LMF.

All of them model multiplicative interactions between modalities through a
(factorised) tensor; they differ in how the tensor is constrained:

* :class:`TuckerFusion` keeps the full core tensor (size grows as the product
  of the hidden sizes, so it is guarded by ``max_core_params``);
* :class:`MUTANFusion` constrains the core to rank ``R``;
* :class:`BLOCKFusion` makes the core block-superdiagonal, each block rank ``R``;
* :class:`TensorFusion` (TFN) takes the full outer product of the inputs (each
  with a 1 appended, so lower-order terms survive) and feeds it to an MLP;
* :class:`LowRankTensorFusion` (LMF) is TFN with a single Linear layer whose
  weight tensor is factorised into rank-``R`` modality-specific factors.
"""
import functools
import itertools
import math
import operator
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from mmfusion.registry import MODELS

from ..layers import (
    build_mlp,
    check_dropout,
    check_min_modalities,
    check_positive,
    masked_outputs,
    masked_product,
    modality_linears,
    power_l2_normalize,
    zero_missing,
)
from .base import BaseVectorFusion


def _per_modality(fusion: BaseVectorFusion, value: int | dict[str, int],
                  arg: str) -> dict[str, int]:
    """Expand an int to ``{modality: int}`` or check that a dict names every modality."""
    owner = type(fusion).__name__
    if isinstance(value, dict):
        if set(value) != set(fusion.modalities):
            raise ValueError(f'{owner}: {arg} must have exactly the modalities of in_dims '
                             f'{sorted(fusion.modalities)}, got {sorted(value)}')
        sizes = {name: value[name] for name in fusion.modalities}
    else:
        sizes = {name: value for name in fusion.modalities}
    for name, size in sizes.items():
        if not isinstance(size, int) or size < 1:
            raise ValueError(f'{owner}: {arg} must be integers >= 1, got {size!r} '
                             f'for {name!r}')
    return sizes


def _with_one(x: torch.Tensor) -> torch.Tensor:
    """Prepend a constant 1 to every row of ``x`` (B, D) -> (B, D + 1), as TFN and LMF do,
    so the products below keep the lower-order (unimodal, bimodal, ...) terms."""
    return F.pad(x, (1, 0), value=1.0)


@MODELS.register_module()
class MUTANFusion(BaseVectorFusion):
    """Multimodal Tucker fusion with a rank-constrained core (MUTAN).

    Ben-younes et al., "MUTAN: Multimodal Tucker Fusion for Visual Question
    Answering", ICCV 2017.

    Each modality is projected to a hidden size ``h_m`` by
    ``h_m = Dropout(tanh(Linear(D_m, h_m)(x_m)))`` (the Tucker factor
    matrices). The core tensor is constrained to rank ``R``:
    ``z = sum_{r=1..R} prod_m (W_m^r h_m + b_m^r)``, with one
    ``Linear(h_m, mm_dim)`` per modality and rank (stored as a single
    ``Linear(h_m, R * mm_dim)``), and the output is ``Linear(mm_dim, out_dim)(z)``.
    For more than two modalities the product runs over all of them, which is
    the same rank constraint on a higher-order core.

    Args:
        in_dims: modality -> feature size D_m; at least two modalities.
        out_dim: size of the fused vector.
        hidden_dims: hidden size ``h_m``, an int for every modality or a dict
            modality -> size (``dim_hv``/``dim_hq`` in the paper's code).
        mm_dim: size of the fused space before the output Linear (``dim_mm``).
        rank: rank ``R`` of the core tensor.
        dropout: dropout probability on the hidden projections.

    Inputs: ``feats`` and ``mask`` as in :class:`BaseVectorFusion`.

    Returns:
        Tensor (B, out_dim).

    Missing modality: its rank projections ``W_m^r h_m + b_m^r`` are replaced
    by ones for that sample (the identity of the product), so ``z`` is the
    rank-``R`` sum over the other modalities only.

    Parameter count: ``sum_m (D_m + 1) * h_m + sum_m (h_m + 1) * R * mm_dim
    + (mm_dim + 1) * out_dim``.
    """

    def __init__(self,
                 in_dims: dict[str, int],
                 out_dim: int,
                 hidden_dims: int | dict[str, int] = 310,
                 mm_dim: int = 510,
                 rank: int = 5,
                 dropout: float = 0.1,
                 init_cfg: dict | None = None) -> None:
        super().__init__(in_dims, out_dim, init_cfg=init_cfg)
        owner = type(self).__name__
        check_min_modalities(owner, self.in_dims, baseline='ConcatFusion')
        check_positive(owner, integer=True, mm_dim=mm_dim, rank=rank)
        check_dropout(owner, dropout)
        self.hidden_dims = _per_modality(self, hidden_dims, 'hidden_dims')
        self.mm_dim = int(mm_dim)
        self.rank = int(rank)
        self.hidden = modality_linears(self.in_dims, self.hidden_dims)
        self.merge = modality_linears(self.hidden_dims, self.rank * self.mm_dim)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(self.mm_dim, self.out_dim)

    def _factor(self, name: str, x: torch.Tensor) -> torch.Tensor:
        h = self.dropout(torch.tanh(self.hidden[name](x)))
        return self.merge[name](h)

    def forward(self, feats: dict[str, torch.Tensor],
                mask: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        self.check_inputs(feats)
        joint = masked_product(self, feats, mask, self._factor)
        z = joint.view(joint.shape[0], self.rank, self.mm_dim).sum(dim=1)
        return self.out(z)


def _chunk_sizes(dim: int, chunks: int) -> list[int]:
    """Split ``dim`` into ``chunks`` sizes that differ by at most one."""
    base, extra = divmod(dim, chunks)
    return [base + 1 if i < extra else base for i in range(chunks)]


@MODELS.register_module()
class BLOCKFusion(BaseVectorFusion):
    """Bilinear superdiagonal fusion (BLOCK).

    Ben-younes et al., "BLOCK: Bilinear Superdiagonal Fusion for Visual
    Question Answering and Visual Relationship Detection", AAAI 2019; follows
    ``Block`` in the authors' block.bootstrap.pytorch.

    Each modality is projected by ``Linear(D_m, mm_dim)`` (then dropout) and
    split into ``chunks`` consecutive chunks (sizes differ by at most one).
    The core tensor is block-superdiagonal: chunk ``c`` of every modality only
    interacts with chunk ``c`` of the others, through a rank-``R`` block term
    ``z_c = sum_{r=1..R} prod_m (M_{m,c}^r x_{m,c} + b_{m,c}^r)``, with
    ``M_{m,c}`` a ``Linear(s_c, R * s_c)``. Each ``z_c`` is optionally power-
    and L2-normalised (before concatenation, the authors' default), the chunks
    are concatenated back to ``mm_dim`` and mapped by ``Linear(mm_dim, out_dim)``.
    For more than two modalities each block term is a product over all of them.
    With ``chunks=1`` and no normalisation this is a rank-``R`` (MUTAN-style) core.

    Args:
        in_dims: modality -> feature size D_m; at least two modalities.
        out_dim: size of the fused vector.
        mm_dim: size of the projected inputs and of the fused space.
        chunks: number of blocks ``C`` on the core's superdiagonal, <= mm_dim.
        rank: rank ``R`` of each block term.
        normalize: power- and L2-normalise each chunk's output.
        dropout: dropout probability on the projected inputs.
        eps: epsilon of the signed square root.

    Inputs: ``feats`` and ``mask`` as in :class:`BaseVectorFusion`.

    Returns:
        Tensor (B, out_dim).

    Missing modality: its block projections ``M_{m,c}^r x_{m,c} + b_{m,c}^r``
    are replaced by ones for that sample, so every block term runs over the
    other modalities only.

    Parameter count, with ``s_c`` the chunk sizes (``sum_c s_c = mm_dim``):
    ``sum_m (D_m + 1) * mm_dim + M * sum_c (s_c + 1) * R * s_c
    + (mm_dim + 1) * out_dim`` for ``M`` modalities.
    """

    def __init__(self,
                 in_dims: dict[str, int],
                 out_dim: int,
                 mm_dim: int = 1600,
                 chunks: int = 20,
                 rank: int = 15,
                 normalize: bool = True,
                 dropout: float = 0.1,
                 eps: float = 1e-8,
                 init_cfg: dict | None = None) -> None:
        super().__init__(in_dims, out_dim, init_cfg=init_cfg)
        owner = type(self).__name__
        check_min_modalities(owner, self.in_dims, baseline='ConcatFusion')
        check_positive(owner, integer=True, mm_dim=mm_dim, chunks=chunks, rank=rank)
        if chunks > mm_dim:
            raise ValueError(f'{owner}: chunks={chunks} must be <= mm_dim={mm_dim}, '
                             f'every chunk needs at least one unit')
        check_dropout(owner, dropout)
        self.mm_dim = int(mm_dim)
        self.rank = int(rank)
        self.normalize = normalize
        self.eps = float(eps)
        self.chunk_sizes = _chunk_sizes(self.mm_dim, int(chunks))
        self.proj = modality_linears(self.in_dims, self.mm_dim)
        self.merge = nn.ModuleDict({
            name: nn.ModuleList(nn.Linear(s, self.rank * s) for s in self.chunk_sizes)
            for name in self.in_dims
        })
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(self.mm_dim, self.out_dim)

    def forward(self, feats: dict[str, torch.Tensor],
                mask: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        self.check_inputs(feats)
        mask = mask or {}
        parts = {
            name: torch.split(self.dropout(self.proj[name](x)), self.chunk_sizes, dim=-1)
            for name, x in zero_missing(self, feats, mask).items()  # checks the mask shapes
        }
        # (B, 1) bool per masked modality, converted once rather than per chunk
        keep = {name: present.to(device=feats[name].device, dtype=torch.bool).unsqueeze(-1)
                for name, present in mask.items() if name in parts and present is not None}
        zs = []
        # The product is taken chunk by chunk: concatenating every chunk's
        # (B, R * s_c) projections into one (B, R * mm_dim) tensor, multiplying
        # at full width and splitting again copied R * mm_dim values per sample
        # twice, in forward and in backward.
        for c, size in enumerate(self.chunk_sizes):
            # A missing modality's block projections are ones (product identity).
            factors = [self.merge[name][c](parts[name][c]) for name in self.modalities]
            block = functools.reduce(operator.mul, (
                torch.where(keep[name], y, 1.0) if name in keep else y
                for name, y in zip(self.modalities, factors)))
            # Rank-major layout (R, s_c), as in block.bootstrap.
            z = block.view(block.shape[0], self.rank, size).sum(dim=1)
            if self.normalize:
                z = power_l2_normalize(z, self.eps)
            zs.append(z)
        return self.out(torch.cat(zs, dim=-1))


@MODELS.register_module()
class TuckerFusion(BaseVectorFusion):
    """Tucker fusion with a full core tensor.

    The Tucker decomposition of the multilinear fusion tensor, as formulated
    in Ben-younes et al., "MUTAN: Multimodal Tucker Fusion for Visual Question
    Answering", ICCV 2017 (Sec. 3.1), without the rank constraint: each
    modality is projected to ``h_m = Dropout(tanh(Linear(D_m, h_m)(x_m)))``,
    then contracted with a full core tensor ``T``:

    * ``core_dim=None`` (default): ``T`` has shape ``(h_1, ..., h_M, out_dim)``,
      the output factor matrix folded into the core,
      ``y_o = sum_{i_1..i_M} T[i_1, ..., i_M, o] h_1[i_1] ... h_M[i_M] + b_o``;
    * ``core_dim=t_o``: the paper's parameterisation, ``T`` of shape
      ``(h_1, ..., h_M, t_o)`` followed by the output factor
      ``W_o = Linear(t_o, out_dim)``, ``y = W_o (T x_1 h_1 ... x_M h_M)``. With
      ``t_o < out_dim`` the core is ``out_dim / t_o`` times smaller (hidden 64,
      out 512, ``t_o=64``: 0.37 M instead of 2.17 M parameters with inputs 512
      and 640), which is the model the paper compares.

    The core has ``prod_m h_m * out_dim`` (or ``* t_o``) entries, which explodes
    quickly; a ValueError is raised above ``max_core_params``.
    :class:`MUTANFusion` (rank-constrained core) and :class:`BLOCKFusion`
    (block-superdiagonal core) are the scalable versions.

    Args:
        in_dims: modality -> feature size D_m; at least two modalities.
        out_dim: size of the fused vector.
        hidden_dims: hidden size ``h_m``, an int for every modality or a dict
            modality -> size.
        dropout: dropout probability on the hidden projections.
        max_core_params: largest core tensor allowed, in entries.
        core_dim: output size ``t_o`` of the core, followed by a
            ``Linear(t_o, out_dim)`` (the paper's form); ``None`` folds the
            output factor into the core (the default, which older checkpoints
            were trained with).

    Inputs: ``feats`` and ``mask`` as in :class:`BaseVectorFusion`.

    Returns:
        Tensor (B, out_dim).

    Missing modality: its hidden vector ``h_m`` is replaced by ones for that
    sample (the identity of the product), so the core is summed over that
    mode and the output depends only on the other modalities.

    Parameter count: ``sum_m (D_m + 1) * h_m + prod_m h_m * out_dim + out_dim``;
    with ``core_dim=t_o``: ``sum_m (D_m + 1) * h_m + prod_m h_m * t_o
    + (t_o + 1) * out_dim``.
    """

    def __init__(self,
                 in_dims: dict[str, int],
                 out_dim: int,
                 hidden_dims: int | dict[str, int] = 64,
                 dropout: float = 0.1,
                 max_core_params: int = 10_000_000,
                 core_dim: int | None = None,
                 init_cfg: dict | None = None) -> None:
        super().__init__(in_dims, out_dim, init_cfg=init_cfg)
        owner = type(self).__name__
        check_min_modalities(owner, self.in_dims, baseline='ConcatFusion')
        check_dropout(owner, dropout)
        if core_dim is not None:
            check_positive(owner, integer=True, core_dim=core_dim)
        self.core_dim = None if core_dim is None else int(core_dim)
        self.hidden_dims = _per_modality(self, hidden_dims, 'hidden_dims')
        core_shape = (*self.hidden_dims.values(), core_dim or self.out_dim)
        core_params = math.prod(core_shape)
        if core_params > max_core_params:
            raise ValueError(f'{owner}: the core tensor of shape {core_shape} would have '
                             f'{core_params:,} parameters, more than max_core_params='
                             f'{max_core_params:,}; use MUTANFusion or BLOCKFusion (low-rank '
                             f'cores), smaller hidden_dims, or raise max_core_params')
        self.proj = modality_linears(self.in_dims, self.hidden_dims)
        self.dropout = nn.Dropout(dropout)
        self.core = nn.Parameter(torch.empty(core_shape))
        # The core acts as a Linear on the flattened outer product of the
        # hidden vectors, so it gets nn.Linear's default bound 1/sqrt(fan_in).
        bound = 1.0 / math.sqrt(core_params // core_shape[-1])
        nn.init.uniform_(self.core, -bound, bound)
        if core_dim is None:
            self.bias = nn.Parameter(torch.empty(self.out_dim))
            nn.init.uniform_(self.bias, -bound, bound)
        else:
            self.out = nn.Linear(core_dim, self.out_dim)

    def forward(self, feats: dict[str, torch.Tensor],
                mask: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        self.check_inputs(feats)
        hidden = masked_outputs(self, feats, mask,
                                lambda name, x: self.dropout(torch.tanh(self.proj[name](x))),
                                fill=1.0)
        hs = list(hidden.values())
        width = self.core.shape[-1]
        if hs[0].shape[-1] <= width:
            # The outer product of the hidden vectors, (B, prod_m h_m), times the
            # core viewed as a (prod_m h_m, width) matrix: one matmul whose input
            # is smaller than the (B, h_2, ..., width) intermediate of
            # contracting one mode at a time (8x for h = 64, out_dim = 512).
            outer = hs[0]
            for h in hs[1:]:
                outer = (outer.unsqueeze(-1) * h.unsqueeze(1)).flatten(1)
            fused = outer @ self.core.view(-1, width)
        else:
            fused = self.core
            for i, h in enumerate(hs):
                # Contract the leading core mode with h; after the first
                # modality the batch dimension leads.
                fused = torch.einsum('bi,i...->b...' if i == 0 else 'bi,bi...->b...', h, fused)
        return fused + self.bias if self.core_dim is None else self.out(fused)


@MODELS.register_module()
class TensorFusion(BaseVectorFusion):
    """Tensor Fusion Network (TFN).

    Zadeh et al., "Tensor Fusion Network for Multimodal Sentiment Analysis",
    EMNLP 2017.

    A 1 is prepended to every modality vector, ``z_m = [1, x_m]``, and the
    outer product ``z_1 (x) z_2 (x) ... (x) z_M`` is flattened into a vector of
    size ``F = prod_m (D_m + 1)`` (the 1s keep every unimodal and lower-order
    interaction term). An MLP maps it to ``out_dim``:
    ``[Linear, ReLU, Dropout] * len(hidden_dims)`` followed by
    ``Linear(-> out_dim)``. ``F`` grows as a product, so a ValueError is
    raised when the MLP would exceed ``max_params``; :class:`LowRankTensorFusion`
    is the scalable version.

    Args:
        in_dims: modality -> feature size D_m; at least two modalities.
        out_dim: size of the fused vector.
        hidden_dims: sizes of the MLP's hidden layers; ``()`` means a single
            Linear layer.
        dropout: dropout probability after each hidden layer.
        max_params: largest parameter count allowed.

    Inputs: ``feats`` and ``mask`` as in :class:`BaseVectorFusion`.

    Returns:
        Tensor (B, out_dim).

    Missing modality: its vector becomes ``[1, 0, ..., 0]`` (only the
    constant term) for that sample, so only the entries of the outer product
    that do not involve it survive, and the output equals the TFN of the
    remaining modalities whose first Linear keeps the weights of those entries.

    Parameter count: ``sum_l (d_l + 1) * d_{l+1}`` over the layer sizes
    ``d = [prod_m (D_m + 1), *hidden_dims, out_dim]``.
    """

    def __init__(self,
                 in_dims: dict[str, int],
                 out_dim: int,
                 hidden_dims: Sequence[int] = (128, 128),
                 dropout: float = 0.0,
                 max_params: int = 10_000_000,
                 init_cfg: dict | None = None) -> None:
        super().__init__(in_dims, out_dim, init_cfg=init_cfg)
        owner = type(self).__name__
        check_min_modalities(owner, self.in_dims, baseline='ConcatFusion')
        check_dropout(owner, dropout)
        self.hidden_dims = tuple(int(h) for h in hidden_dims)
        check_positive(owner, integer=True,
                       **{f'hidden_dims[{i}]': h for i, h in enumerate(self.hidden_dims)})
        flat = math.prod(d + 1 for d in self.in_dims.values())
        dims = [flat, *self.hidden_dims, self.out_dim]
        params = sum((a + 1) * b for a, b in itertools.pairwise(dims))
        if params > max_params:
            sizes = ' * '.join(f'({d} + 1)' for d in self.in_dims.values())
            raise ValueError(f'{owner}: the flattened outer product has {sizes} = '
                             f'{flat:,} entries, so the MLP {dims} would have {params:,} '
                             f'parameters, more than max_params={max_params:,}; use '
                             f'LowRankTensorFusion, project the modalities to smaller in_dims '
                             f'first, or raise max_params')
        self.mlp = build_mlp(dims, dropout)

    def outer_product(self, feats: dict[str, torch.Tensor],
                      mask: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """The flattened outer product (B, prod_m (D_m + 1)), last modality fastest."""
        flat: torch.Tensor | None = None
        for x in zero_missing(self, feats, mask).values():
            z = _with_one(x)
            flat = z if flat is None else (flat.unsqueeze(-1) * z.unsqueeze(1)).flatten(1)
        return flat

    def forward(self, feats: dict[str, torch.Tensor],
                mask: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        self.check_inputs(feats)
        return self.mlp(self.outer_product(feats, mask))


@MODELS.register_module()
class LowRankTensorFusion(BaseVectorFusion):
    """Low-rank Multimodal Fusion (LMF).

    Liu et al., "Efficient Low-rank Multimodal Fusion with Modality-Specific
    Factors", ACL 2018.

    TFN followed by one Linear layer, ``y = W . (z_1 (x) ... (x) z_M) + b`` with
    ``z_m = [1, x_m]``, where the weight tensor ``W`` is decomposed into
    modality-specific rank-``R`` factors ``A_m`` of shape ``(R, D_m + 1, out_dim)``
    combined with fusion weights ``w`` (1, R):
    ``y = sum_r w_r prod_m (z_m A_m^r) + b``. The outer product is never
    formed, so the cost is linear in the number of modalities.

    The factors are ``nn.Parameter`` in an ``nn.ParameterDict`` (MultiBench's
    LMF keeps them in a plain Python list, so they are never registered,
    moved to the device nor trained).

    Args:
        in_dims: modality -> feature size D_m; at least two modalities.
        out_dim: size of the fused vector.
        rank: rank ``R`` of the decomposition.

    Inputs: ``feats`` and ``mask`` as in :class:`BaseVectorFusion`.

    Returns:
        Tensor (B, out_dim).

    Missing modality: its factor ``z_m A_m^r`` is replaced by ones for that
    sample (the identity of the product), so the output is exactly the LMF of
    the remaining modalities with the same factors, fusion weights and bias.

    Parameter count: ``sum_m R * (D_m + 1) * out_dim + R + out_dim``.
    """

    def __init__(self,
                 in_dims: dict[str, int],
                 out_dim: int,
                 rank: int = 4,
                 init_cfg: dict | None = None) -> None:
        super().__init__(in_dims, out_dim, init_cfg=init_cfg)
        owner = type(self).__name__
        check_min_modalities(owner, self.in_dims, baseline='ConcatFusion')
        check_positive(owner, integer=True, rank=rank)
        self.rank = int(rank)
        self.factors = nn.ParameterDict({
            name: nn.Parameter(torch.empty(self.rank, dim + 1, self.out_dim))
            for name, dim in self.in_dims.items()
        })
        self.fusion_weights = nn.Parameter(torch.empty(1, self.rank))
        self.fusion_bias = nn.Parameter(torch.zeros(1, self.out_dim))
        # Initialisation of the authors' code.
        for factor in self.factors.values():
            nn.init.xavier_normal_(factor)
        nn.init.xavier_normal_(self.fusion_weights)

    def forward(self, feats: dict[str, torch.Tensor],
                mask: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        self.check_inputs(feats)
        mask = mask or {}
        joint: torch.Tensor | None = None
        for name, x in zero_missing(self, feats, mask).items():
            # (B, D_m + 1) @ (R, D_m + 1, O) -> (R, B, O): a broadcast matmul
            # reads the rank-first factor where it is; einsum('bd,rdo->bro')
            # copied it into a (D_m + 1, R * O) layout on every call.
            factor = torch.matmul(_with_one(x), self.factors[name])
            present = mask.get(name)
            if present is not None:
                # A missing modality's factor is ones for that sample (product identity).
                present = present.to(device=factor.device, dtype=torch.bool)
                factor = torch.where(present.view(1, -1, 1), factor, 1.0)
            joint = factor if joint is None else joint * factor
        # w (1, R) @ (R, B * O): the rank-weighted sum, no batch-first copy.
        out = torch.mm(self.fusion_weights, joint.view(self.rank, -1))
        return out.view(-1, self.out_dim) + self.fusion_bias
