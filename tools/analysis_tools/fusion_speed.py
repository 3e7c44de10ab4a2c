"""Speed and activation memory of every registered fusion module, side by side
with a plain implementation of each paper's formula.

    python tools/analysis_tools/fusion_speed.py [--reps 7] [--batch 64]
        [--only BLOCKFusion LowRankTensorFusion] [--out docs/fusion_speed.md]

For every vector fusion the tool builds the library module and a reference
written here from the paper's equations (plain tensors and loops, no code of
``mmfusion.models``), copies the library module's weights into the reference
(so both have the same parameter count, which the table shows), checks that
their outputs agree in eval mode, then times, interleaving the two modules
repetition by repetition so that a noisy machine slows both alike:

* ``fwd+bwd``: train mode (dropout on), forward and backward of a random
  projection of the output;
* ``fwd``: eval mode under ``torch.inference_mode``;
* with one CPU thread and with all of them (``torch.get_num_threads()``);
* ``masked``: the library module's forward+backward with a quarter of the
  samples missing the second modality, over the unmasked time;
* saved activations: bytes of the tensors autograd keeps for the backward
  pass (``torch.autograd.graph.saved_tensors_hooks``; parameters and inputs
  not counted), a proxy of the peak activation memory of training.

Ratios are library time / reference time (below 1: the library is faster);
each time is the best of ``--reps`` repetitions. ``--clock cpu`` (default)
times one-thread runs in CPU seconds of the calling thread, which other
processes on a shared machine do not inflate; several threads and GPUs are
timed in wall time.
Token and spatial fusions are timed too (no reference: their papers'
formulas are whole attention stacks, which the library builds from
``torch.nn.MultiheadAttention``). On a GPU (``--device cuda``) the timings run
under bf16 autocast.
"""
import argparse
import functools
import math
import sys
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

# ---------------------------------------------------------------------------
# The benchmark setting: batch 64, inputs 512 and 640 -> 512 (issue's setting).
# ---------------------------------------------------------------------------
DIMS = dict(image=512, text=640)
OUT = 512

# Library configs at the hyper-parameters of the papers' VQA settings where
# they fit the parameter guards; TensorFusion gets a 32-unit hidden layer (its
# flattened outer product has 513 * 641 = 328,833 entries) and
# MultiplicativeInteractionFusion the 'vector' form (the 'matrix' form would
# have 168 M parameters at these sizes).
VECTOR_CFGS = {
    'ConcatFusion': dict(),
    'SumFusion': dict(),
    'LinearSumFusion': dict(),
    'GMUFusion': dict(),
    'FiLMFusion': dict(target='image'),
    'MultiplicativeInteractionFusion': dict(mode='vector'),
    'MLBFusion': dict(hidden_dim=1200),
    'MFBFusion': dict(factor_k=5),
    'MFHFusion': dict(order=2, factor_k=5),
    'MUTANFusion': dict(hidden_dims=310, mm_dim=510, rank=5),
    'BLOCKFusion': dict(mm_dim=1600, chunks=20, rank=15),
    'TuckerFusion': dict(hidden_dims=64),
    'TuckerFusion(core_dim=64)': dict(hidden_dims=64, core_dim=64),
    'TensorFusion': dict(hidden_dims=(32, ), max_params=20_000_000),
    'LowRankTensorFusion': dict(rank=4),
    'LateFusion': dict(),
}


# ---------------------------------------------------------------------------
# Reference implementations: each paper's formula, written out plainly. Every
# reference copies the parameters of a library module (cloned, so the two
# never share storage) and is checked against it; none calls mmfusion code.
# ---------------------------------------------------------------------------
class Reference(nn.Module):
    """Base of the references: ``p(t)`` clones a library tensor into a Parameter."""

    @staticmethod
    def p(t: torch.Tensor) -> nn.Parameter:
        return nn.Parameter(t.detach().clone())

    def lin(self, lin: nn.Linear) -> tuple[nn.Parameter, nn.Parameter]:
        return self.p(lin.weight), self.p(lin.bias)


def signed_sqrt_l2(z: torch.Tensor, eps: float) -> torch.Tensor:
    """MFB's power normalisation, ``sign(z)(sqrt(|z| + eps) - sqrt(eps))``, then L2."""
    z = torch.sign(z) * (torch.sqrt(z.abs() + eps) - math.sqrt(eps))
    return F.normalize(z, dim=-1)


class RefConcat(Reference):
    """ReLU(W [x_1; x_2] + b)."""

    def __init__(self, lib):
        super().__init__()
        self.w, self.b = self.lin(lib.mlp[0])

    def forward(self, x1, x2):
        return F.relu(F.linear(torch.cat([x1, x2], -1), self.w, self.b))


class RefSum(Reference):
    """ReLU(W_1 x_1 + b_1 + W_2 x_2 + b_2)."""

    def __init__(self, lib):
        super().__init__()
        (self.w1, self.b1), (self.w2, self.b2) = (self.lin(lib.proj[m]) for m in DIMS)

    def forward(self, x1, x2):
        return F.relu(F.linear(x1, self.w1, self.b1) + F.linear(x2, self.w2, self.b2))


class RefLinearSum(RefSum):
    """ReLU(sum_m softmax(l)_m (W_m x_m + b_m))."""

    def __init__(self, lib):
        super().__init__(lib)
        self.logits = self.p(lib.weight_logits)

    def forward(self, x1, x2):
        w = self.logits.softmax(0)
        return F.relu(w[0] * F.linear(x1, self.w1, self.b1) + w[1] * F.linear(x2, self.w2, self.b2))


class RefGMU(Reference):
    """Arevalo et al. 2017: h_m = tanh(W_m x_m), z = sigmoid(W_z [x_1; x_2]),
    h = z h_1 + (1 - z) h_2."""

    def __init__(self, lib):
        super().__init__()
        (self.w1, self.b1), (self.w2, self.b2) = (self.lin(lib.proj[m]) for m in DIMS)
        self.wz, self.bz = self.lin(lib.gate)

    def forward(self, x1, x2):
        h1 = torch.tanh(F.linear(x1, self.w1, self.b1))
        h2 = torch.tanh(F.linear(x2, self.w2, self.b2))
        z = torch.sigmoid(F.linear(torch.cat([x1, x2], -1), self.wz, self.bz))
        return z * h1 + (1 - z) * h2


class RefFiLM(Reference):
    """Perez et al. 2018: W_o ReLU(gamma * (W_t x_t) + beta), [gamma - 1, beta] = W_c x_c."""

    def __init__(self, lib):
        super().__init__()
        self.wt, self.bt = self.lin(lib.target_proj)
        self.wc, self.bc = self.lin(lib.film['text'])
        self.wo, self.bo = self.lin(lib.out)

    def forward(self, x1, x2):
        h = F.linear(x1, self.wt, self.bt)
        d_gamma, beta = F.linear(x2, self.wc, self.bc).chunk(2, -1)
        return F.linear(F.relu((1 + d_gamma) * h + beta), self.wo, self.bo)


class RefMIVector(Reference):
    """Jayakumar et al. 2020, diagonal form: f = (W z + V) * x + U z + b."""

    def __init__(self, lib):
        super().__init__()
        self.ww, self.bw = self.lin(lib.weight_gen)
        self.wb, self.bb = self.lin(lib.bias_gen)

    def forward(self, x1, x2):
        return F.linear(x2, self.ww, self.bw) * x1 + F.linear(x2, self.wb, self.bb)


class RefMLB(Reference):
    """Kim et al. 2017: P (tanh(U x_1) * tanh(V x_2))."""

    def __init__(self, lib):
        super().__init__()
        (self.u, self.bu), (self.v, self.bv) = (self.lin(lib.proj[m]) for m in DIMS)
        self.wo, self.bo = self.lin(lib.out)
        self.drop = nn.Dropout(lib.dropout.p)

    def forward(self, x1, x2):
        joint = (torch.tanh(F.linear(x1, self.u, self.bu))
                 * torch.tanh(F.linear(x2, self.v, self.bv)))
        return F.linear(self.drop(joint), self.wo, self.bo)


class RefMFB(Reference):
    """Yu et al. 2017: SumPool_k(U x_1 * V x_2), signed sqrt, L2 (one MFB block per
    entry of ``lib.proj`` lists: MFH cascades them)."""

    def __init__(self, lib, blocks=None):
        super().__init__()
        blocks = [lib.proj] if blocks is None else blocks
        self.weights = nn.ParameterList(
            t for proj in blocks for m in DIMS for t in self.lin(proj[m]))
        self.k, self.eps = lib.factor_k, lib.eps
        self.drop = nn.Dropout(lib.dropout.p)

    def forward(self, x1, x2):
        outs, previous = [], None
        for i in range(0, len(self.weights), 4):
            u, bu, v, bv = self.weights[i:i + 4]
            joint = F.linear(x1, u, bu) * F.linear(x2, v, bv)
            if previous is not None:  # MFH: block i multiplies by block i-1's expansion
                joint = joint * previous
            previous = self.drop(joint)
            pooled = previous.view(x1.shape[0], -1, self.k).sum(-1)
            outs.append(signed_sqrt_l2(pooled, self.eps))
        return torch.cat(outs, -1)


class RefMFH(RefMFB):

    def __init__(self, lib):
        super().__init__(lib, blocks=list(lib.proj))


class RefMUTAN(Reference):
    """Ben-younes et al. 2017: z = sum_r (W_1^r h_1) * (W_2^r h_2), y = W_o z,
    h_m = tanh(W_m x_m); one rank term after the other, as in Eq. 7."""

    def __init__(self, lib):
        super().__init__()
        (self.w1, self.b1), (self.w2, self.b2) = (self.lin(lib.hidden[m]) for m in DIMS)
        (self.m1, self.c1), (self.m2, self.c2) = (self.lin(lib.merge[m]) for m in DIMS)
        self.wo, self.bo = self.lin(lib.out)
        self.rank, self.mm = lib.rank, lib.mm_dim
        self.drop = nn.Dropout(lib.dropout.p)

    def forward(self, x1, x2):
        h1 = self.drop(torch.tanh(F.linear(x1, self.w1, self.b1)))
        h2 = self.drop(torch.tanh(F.linear(x2, self.w2, self.b2)))
        z = 0
        for r in range(self.rank):
            rows = slice(r * self.mm, (r + 1) * self.mm)
            z = z + (F.linear(h1, self.m1[rows], self.c1[rows])
                     * F.linear(h2, self.m2[rows], self.c2[rows]))
        return F.linear(z, self.wo, self.bo)


class RefBLOCK(Reference):
    """Ben-younes et al. 2019: chunk c of both projections meets only chunk c,
    z_c = sum_r (M_1c^r x_1c) * (M_2c^r x_2c), each z_c signed-sqrt/L2
    normalised, y = W_o [z_1; ...; z_C] (block.bootstrap's ``Block``)."""

    def __init__(self, lib):
        super().__init__()
        (self.w1, self.b1), (self.w2, self.b2) = (self.lin(lib.proj[m]) for m in DIMS)
        self.merge = nn.ParameterList(
            t for c in range(len(lib.chunk_sizes)) for m in DIMS for t in self.lin(lib.merge[m][c]))
        self.wo, self.bo = self.lin(lib.out)
        self.sizes, self.rank, self.eps = lib.chunk_sizes, lib.rank, lib.eps
        self.normalize = lib.normalize
        self.drop = nn.Dropout(lib.dropout.p)

    def forward(self, x1, x2):
        p1 = self.drop(F.linear(x1, self.w1, self.b1)).split(self.sizes, -1)
        p2 = self.drop(F.linear(x2, self.w2, self.b2)).split(self.sizes, -1)
        zs = []
        for c, size in enumerate(self.sizes):
            m1, c1, m2, c2 = self.merge[4 * c:4 * c + 4]
            z = (F.linear(p1[c], m1, c1) * F.linear(p2[c], m2, c2))
            z = z.view(-1, self.rank, size).sum(1)
            zs.append(signed_sqrt_l2(z, self.eps) if self.normalize else z)
        return F.linear(torch.cat(zs, -1), self.wo, self.bo)


class RefTucker(Reference):
    """Tucker fusion (MUTAN paper, Sec. 3.1): y = ((T x_1 h_1) x_2 h_2) x_3 W_o,
    h_m = tanh(W_m x_m); with the output factor folded into the core when the
    library module has no separate output layer."""

    def __init__(self, lib):
        super().__init__()
        (self.w1, self.b1), (self.w2, self.b2) = (self.lin(lib.proj[m]) for m in DIMS)
        self.core = self.p(lib.core)
        out = getattr(lib, 'out', None)
        if out is None:
            self.wo, self.bo = None, self.p(lib.bias)
        else:
            self.wo, self.bo = self.lin(out)
        self.drop = nn.Dropout(lib.dropout.p)

    def forward(self, x1, x2):
        h1 = self.drop(torch.tanh(F.linear(x1, self.w1, self.b1)))
        h2 = self.drop(torch.tanh(F.linear(x2, self.w2, self.b2)))
        y = torch.einsum('bi,bj,ijo->bo', h1, h2, self.core)
        return y + self.bo if self.wo is None else F.linear(y, self.wo, self.bo)


class RefTFN(Reference):
    """Zadeh et al. 2017: MLP(vec([1; x_1] outer [1; x_2])), the outer product by
    ``bmm`` as in the authors' code."""

    def __init__(self, lib):
        super().__init__()
        self.layers = nn.ParameterList(
            t for layer in lib.mlp if isinstance(layer, nn.Linear) for t in self.lin(layer))

    def forward(self, x1, x2):
        ones = x1.new_ones(x1.shape[0], 1)
        z1, z2 = torch.cat([ones, x1], 1), torch.cat([ones, x2], 1)
        h = torch.bmm(z1.unsqueeze(2), z2.unsqueeze(1)).flatten(1)
        for i in range(0, len(self.layers), 2):
            h = F.linear(h, self.layers[i], self.layers[i + 1])
            if i + 2 < len(self.layers):
                h = F.relu(h)
        return h


class RefLMF(Reference):
    """Liu et al. 2018, as the authors' code: f_m = [1; x_m] A_m (A_m of shape
    (R, D_m + 1, O), a broadcast matmul), y = w . (f_1 * f_2) + b."""

    def __init__(self, lib):
        super().__init__()
        self.a1, self.a2 = (self.p(lib.factors[m]) for m in DIMS)
        self.w, self.b = self.p(lib.fusion_weights), self.p(lib.fusion_bias)

    def forward(self, x1, x2):
        ones = x1.new_ones(x1.shape[0], 1)
        f1 = torch.matmul(torch.cat([ones, x1], 1), self.a1)
        f2 = torch.matmul(torch.cat([ones, x2], 1), self.a2)
        return torch.matmul(self.w, (f1 * f2).permute(1, 0, 2)).squeeze(1) + self.b


class RefLate(Reference):
    """Mean of the per-modality decisions, (W_1 x_1 + b_1 + W_2 x_2 + b_2) / 2."""

    def __init__(self, lib):
        super().__init__()
        (self.w1, self.b1), (self.w2, self.b2) = (self.lin(lib.heads[m][0]) for m in DIMS)

    def forward(self, x1, x2):
        return (F.linear(x1, self.w1, self.b1) + F.linear(x2, self.w2, self.b2)) / 2


REFERENCES: dict[str, Callable[[nn.Module], nn.Module]] = {
    'ConcatFusion': RefConcat, 'SumFusion': RefSum, 'LinearSumFusion': RefLinearSum,
    'GMUFusion': RefGMU, 'FiLMFusion': RefFiLM, 'MultiplicativeInteractionFusion': RefMIVector,
    'MLBFusion': RefMLB, 'MFBFusion': RefMFB, 'MFHFusion': RefMFH, 'MUTANFusion': RefMUTAN,
    'BLOCKFusion': RefBLOCK, 'TuckerFusion': RefTucker, 'TensorFusion': RefTFN,
    'LowRankTensorFusion': RefLMF, 'LateFusion': RefLate,
}


# ---------------------------------------------------------------------------
# Measurement
# ---------------------------------------------------------------------------
def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def saved_bytes(run: Callable[[], torch.Tensor], exclude: list[torch.Tensor]) -> int:
    """Bytes of the distinct storages autograd saves during ``run()`` (its
    forward), leaving out those of ``exclude`` (parameters and inputs)."""
    skip = {t.untyped_storage().data_ptr() for t in exclude}
    seen: dict[int, int] = {}

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in skip:
            seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        run()
    return sum(seen.values())


def interleaved(fns: list[Callable[[], None]], reps: int, inner: int,
                sync: Callable[[], None], clock: Callable[[], float]) -> list[float]:
    """Seconds per call of each of ``fns``: the best of ``reps`` repetitions
    (background load only ever adds time, so the minimum is the estimate least
    disturbed by it), alternating between them every repetition so that a
    change of load slows all alike."""
    times: list[list[float]] = [[] for _ in fns]
    for fn in fns:  # warm-up: allocator, thread pool, lazy initialisation
        fn()
    for _ in range(reps):
        for i, fn in enumerate(fns):
            sync()
            start = clock()
            for _ in range(inner):
                fn()
            sync()
            times[i].append((clock() - start) / inner)
    return [min(t) for t in times]


class Case:
    """One module to time: ``train_step``/``infer`` closures, plus the masked
    variant and saved-bytes count (library) where they apply."""

    def __init__(self, module: nn.Module, call: Callable[[bool], torch.Tensor],
                 inputs: list[torch.Tensor], amp: Callable):
        self.module, self.call, self.inputs, self.amp = module, call, inputs, amp
        self.grad_out: torch.Tensor | None = None

    def train_step(self, masked: bool = False) -> None:
        self.module.train()
        with self.amp():
            out = self.call(masked)
        if self.grad_out is None:
            self.grad_out = torch.randn_like(out.float())
        out.float().backward(self.grad_out)
        self.module.zero_grad(set_to_none=True)

    def infer(self) -> None:
        self.module.eval()
        with torch.inference_mode(), self.amp():
            self.call(False)

    def saved(self) -> int:
        self.module.train()
        exclude = list(self.module.parameters()) + self.inputs
        with self.amp():
            return saved_bytes(lambda: self.call(False), exclude)


def vector_cases(name: str, cfg: dict, batch: int, device: str, amp) -> tuple[Case, Case | None]:
    from mmfusion.registry import MODELS
    torch.manual_seed(0)
    lib_type = name.split('(')[0]
    lib = MODELS.build(dict(type=lib_type, in_dims=DIMS, out_dim=OUT, **cfg)).to(device)
    g = torch.Generator().manual_seed(1)
    x1, x2 = (torch.randn(batch, d, generator=g).to(device) for d in DIMS.values())
    feats = dict(image=x1, text=x2)
    present = torch.arange(batch, device=device) % 4 != 0  # a quarter miss the text
    lib_case = Case(lib, lambda masked: lib(feats, dict(text=present) if masked else None),
                    [x1, x2], amp)
    ref_cls = REFERENCES.get(lib_type)
    if ref_cls is None:
        return lib_case, None
    ref = ref_cls(lib).to(device)
    return lib_case, Case(ref, lambda masked: ref(x1, x2), [x1, x2], amp)


def token_cases(batch: int, device: str, keep: Callable[[str], bool]):
    """(name, module, call, inputs) for every token fusion, image 49 + text 16 tokens."""
    from mmfusion.models.fusion import TOKEN_FUSIONS
    from mmfusion.registry import MODELS
    lengths = dict(image=49, text=16)
    g = torch.Generator().manual_seed(1)
    tokens = {m: torch.randn(batch, lengths[m], d, generator=g).to(device) for m, d in DIMS.items()}
    masks = {m: torch.ones(batch, n, dtype=torch.bool, device=device) for m, n in lengths.items()}
    masks['text'][:, 12:] = False
    extra = dict(TopDownAttentionFusion=dict(hidden_dim=512))
    for name in filter(keep, TOKEN_FUSIONS):
        torch.manual_seed(0)
        module = MODELS.build(dict(type=name, in_dims=DIMS, out_dim=OUT, **extra.get(name, {})))
        module = module.to(device)
        yield (name, module, (lambda m=module: m.forward_pooled(tokens, masks)),
               list(tokens.values()))


def spatial_cases(batch: int, device: str, keep: Callable[[str], bool]):
    """(name, module, call, inputs) for every spatial fusion: image and depth
    pyramids of 256 and 64 channels at 32, 16, 8 px; text tokens condition."""
    from mmfusion.models.encoders.base import ModalityFeatures
    from mmfusion.models.fusion import SPATIAL_FUSIONS
    from mmfusion.registry import MODELS
    g = torch.Generator().manual_seed(1)
    channels = dict(image=256, depth=64)
    maps = {m: [torch.randn(batch, c, s, s, generator=g).to(device) for s in (32, 16, 8)]
            for m, c in channels.items()}
    text = torch.randn(batch, 16, DIMS['text'], generator=g).to(device)
    cond = dict(text=ModalityFeatures(pooled=text.mean(1), tokens=text,
                                      mask=torch.ones(batch, 16, dtype=torch.bool, device=device)))
    text_fusions = ('SpatialFiLMFusion', 'SpatialCrossAttentionFusion')
    for name in filter(keep, SPATIAL_FUSIONS):
        torch.manual_seed(0)
        extra = dict(cond_dim=DIMS['text']) if name in text_fusions else {}
        module = MODELS.build(dict(type=name, in_channels=channels, out_channels=256, **extra))
        module = module.to(device)

        def call(m=module):
            return torch.cat([o.flatten(1) for o in m(maps, cond)], 1)

        yield name, module, call, [t for level in maps.values() for t in level]


def max_rel_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().max() / b.float().abs().max().clamp(min=1e-12))


def measure(args) -> list[dict]:
    import mmfusion.models  # noqa: F401  (registers the modules)
    device = args.device
    sync = torch.cuda.synchronize if device == 'cuda' else (lambda: None)
    if device == 'cuda' and torch.cuda.is_bf16_supported():
        def amp():
            return torch.autocast('cuda', dtype=torch.bfloat16)
    else:
        from contextlib import nullcontext as amp
    all_threads = torch.get_num_threads()
    thread_counts = thread_list(args)

    def clock_for(threads: int) -> Callable[[], float]:
        """'cpu' with one thread: CPU seconds of the calling thread (PyTorch
        runs CPU ops, backward included, in the caller), which time-slicing by
        other processes does not inflate. Several threads: wall time (their
        summed CPU time would count the spin-waiting of the thread pool)."""
        if args.clock == 'wall' or device == 'cuda' or threads > 1:
            return time.perf_counter
        return time.thread_time
    rows = []

    def keep(name):
        return not args.only or name.split('(')[0] in args.only or name in args.only

    def timings(row, lib_case, ref_case):
        for threads in thread_counts:
            torch.set_num_threads(threads)
            pairs = [lib_case] + ([ref_case] if ref_case else [])
            t = interleaved([c.train_step for c in pairs]
                            + [functools.partial(lib_case.train_step, True)],
                            args.reps, args.inner, sync, clock_for(threads))
            row[f'fb_{threads}'] = t[0]
            row[f'fb_ref_{threads}'] = t[1] if ref_case else None
            row[f'masked_{threads}'] = t[-1] / t[0]
            t = interleaved([c.infer for c in pairs], args.reps, args.inner, sync,
                            clock_for(threads))
            row[f'f_{threads}'] = t[0]
            row[f'f_ref_{threads}'] = t[1] if ref_case else None
        torch.set_num_threads(all_threads)

    for name, cfg in VECTOR_CFGS.items():
        if not keep(name):
            continue
        try:
            lib_case, ref_case = vector_cases(name, cfg, args.batch, device, amp)
        except TypeError as err:  # an option this version of the module lacks
            print(f'skipped {name}: {err}', file=sys.stderr)
            continue
        row = dict(name=name, form='vector', params=n_params(lib_case.module),
                   ref_params=n_params(ref_case.module) if ref_case else None)
        if ref_case:
            lib_case.module.eval()
            ref_case.module.eval()
            with torch.no_grad():
                row['diff'] = max_rel_diff(lib_case.call(False), ref_case.call(False))
        row['saved'] = lib_case.saved()
        row['ref_saved'] = ref_case.saved() if ref_case else None
        timings(row, lib_case, ref_case)
        rows.append(row)
        print(format_row(row, thread_counts), file=sys.stderr, flush=True)
    if not args.vector_only:
        token_batch = max(1, args.batch // 4)
        for form, cases in (('token', token_cases(token_batch, device, keep)),
                            ('spatial', spatial_cases(max(1, args.batch // 16), device, keep))):
            for name, module, call, inputs in cases:
                case = Case(module, lambda masked, c=call: c(), inputs, amp)
                row = dict(name=name, form=form, params=n_params(module), ref_params=None,
                           saved=case.saved(), ref_saved=None)
                timings(row, case, None)
                for t in thread_counts:  # their masks are token padding, part of the inputs
                    row[f'masked_{t}'] = None
                rows.append(row)
                print(format_row(row, thread_counts), file=sys.stderr, flush=True)
    return rows


def fmt_ratio(a, b) -> str:
    return '—' if a is None or not b else f'{a / b:.2f}'


def format_row(row: dict, thread_counts: list[int]) -> str:
    cells = [row['name'], f"{row['params']:,}",
             '—' if row['ref_params'] is None else f"{row['ref_params']:,}"]
    for threads in thread_counts:
        cells += [f"{row[f'fb_{threads}'] * 1e3:.2f}",
                  fmt_ratio(row[f'fb_{threads}'], row[f'fb_ref_{threads}']),
                  f"{row[f'f_{threads}'] * 1e3:.2f}",
                  fmt_ratio(row[f'f_{threads}'], row[f'f_ref_{threads}'])]
    masked = row[f'masked_{thread_counts[0]}']
    cells += ['—' if masked is None else f'{masked:.2f}', f"{row['saved'] / 2**20:.1f}",
              fmt_ratio(row['saved'], row['ref_saved']),
              '—' if 'diff' not in row else f"{row['diff']:.1e}"]
    return '| ' + ' | '.join(cells) + ' |'


def table(rows: list[dict], thread_counts: list[int]) -> str:
    head = ['module', 'params', 'ref params']
    for t in thread_counts:
        head += [f'fwd+bwd ms ({t}t)', 'ratio', f'fwd ms ({t}t)', 'ratio']
    head += [f'masked / unmasked fwd+bwd ({thread_counts[0]}t)', 'saved MiB', 'saved ratio',
             'max rel. diff']
    lines = ['| ' + ' | '.join(head) + ' |', '|' + ' --- |' * len(head)]
    return '\n'.join(lines + [format_row(r, thread_counts) for r in rows])


def thread_list(args) -> list[int]:
    """The CPU thread counts to time: 1 and/or all (``torch.get_num_threads()``)."""
    if args.device == 'cuda':
        return [1]
    every = torch.get_num_threads()
    return sorted({1 if t == '1' else every for t in args.threads})


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--batch', type=int, default=64,
                        help='vector batch (token fusions: / 4, spatial: / 16)')
    parser.add_argument('--reps', type=int, default=7, help='interleaved repetitions (best of)')
    parser.add_argument('--inner', type=int, default=3, help='calls per repetition')
    parser.add_argument('--only', nargs='+', default=None, help='module names to run')
    parser.add_argument('--vector-only', action='store_true', help='skip token/spatial fusions')
    parser.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    parser.add_argument('--clock', default='cpu', choices=['cpu', 'wall'],
                        help="CPU: 'cpu' times CPU seconds (robust to other processes "
                        "on a shared machine), 'wall' elapsed time; a GPU always uses wall")
    parser.add_argument('--threads', nargs='+', choices=['1', 'all'], default=['1', 'all'],
                        help='CPU thread counts to time (all: torch.get_num_threads())')
    parser.add_argument('--tol', type=float, default=1e-4,
                        help='largest relative output difference to the reference')
    parser.add_argument('--out', help='also write the table (markdown) to this file')
    args = parser.parse_args(argv)
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda: no CUDA GPU is available')
    for flag in ('batch', 'reps', 'inner'):
        if getattr(args, flag) < 1:
            parser.error(f'--{flag} must be at least 1, got {getattr(args, flag)}')
    threads = torch.get_num_threads()
    rows = measure(args)
    counts = thread_list(args)
    clock = 'wall' if args.device == 'cuda' else args.clock
    text = (f'device: {args.device}, torch {torch.__version__}, threads '
            f'{" and ".join(map(str, counts))} (of {threads}), {clock} clock '
            f'(several threads: wall), batch {args.batch}, inputs {DIMS} -> {OUT}, '
            f'best of {args.reps} interleaved '
            f'repetitions x {args.inner} calls; ratio = library / reference time\n\n'
            + table(rows, counts))
    print(text)
    if args.out:
        with open(args.out, 'w') as f:
            f.write(text + '\n')
    bad = [r['name'] for r in rows if r.get('diff', 0) > args.tol]
    if bad:
        raise SystemExit(f'outputs differ from the reference formula by more than '
                         f'--tol={args.tol}: {bad}')
    return rows


if __name__ == '__main__':
    main()
