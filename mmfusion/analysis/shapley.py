"""Per-modality contributions: leave-one-out and Shapley values over modalities.

The players are modalities and the value of a coalition ``S`` is a metric of
the model with every modality outside ``S`` missing (per sample: a tensor
(B,); per split: a number). Shapley values (Shapley, 1953) are exact for up
to ``exact_max`` players (2^M evaluations of the value function, each coalition
once) and estimated from random permutations beyond (Castro et al., 2009),
which captum's ``ShapleyValueSampling`` also does, but over input features of
tensors rather than over a set function of modalities, hence this module.
Exact values satisfy efficiency: they sum to ``v(all) - v(none)``.
"""
import itertools
import math
from typing import Callable, Dict, FrozenSet, Hashable, Sequence, Union

import numpy as np
import torch

Value = Union[float, torch.Tensor]
ValueFn = Callable[[FrozenSet[Hashable]], Value]


class _Cached:
    """Each coalition is evaluated once (a forward over the batch or split)."""

    def __init__(self, fn: ValueFn) -> None:
        self.fn, self.cache = fn, {}

    def __call__(self, coalition) -> Value:
        key = frozenset(coalition)
        if key not in self.cache:
            self.cache[key] = self.fn(key)
        return self.cache[key]


def exact_shapley(value_fn: ValueFn, players: Sequence[Hashable]) -> Dict[Hashable, Value]:
    """phi_i = sum over S not containing i of |S|! (M-|S|-1)! / M! (v(S+i) - v(S))."""
    v = _Cached(value_fn)
    m = len(players)
    phi = {}
    for p in players:
        others = [q for q in players if q != p]
        total = 0.0
        for k in range(m):
            w = math.factorial(k) * math.factorial(m - k - 1) / math.factorial(m)
            for s in itertools.combinations(others, k):
                total = total + w * (v(set(s) | {p}) - v(s))
        phi[p] = total
    return phi


def sampled_shapley(value_fn: ValueFn, players: Sequence[Hashable], num_permutations: int = 64,
                    seed: int = 0) -> Dict[Hashable, Value]:
    """Mean marginal contribution over random orderings (unbiased; exactly
    efficient for every ordering, hence also on average)."""
    v = _Cached(value_fn)
    rng = np.random.default_rng(seed)
    phi = {p: 0.0 for p in players}
    for _ in range(num_permutations):
        order = [players[i] for i in rng.permutation(len(players))]
        before, prev = set(), v(set())
        for p in order:
            before.add(p)
            cur = v(before)
            phi[p] = phi[p] + (cur - prev)
            prev = cur
    return {p: val / num_permutations for p, val in phi.items()}


def shapley_values(value_fn: ValueFn, players: Sequence[Hashable], exact_max: int = 6,
                   num_permutations: int = 64, seed: int = 0) -> Dict[Hashable, Value]:
    """Exact Shapley values for at most ``exact_max`` players, sampled beyond."""
    if len(players) <= exact_max:
        return exact_shapley(value_fn, players)
    return sampled_shapley(value_fn, players, num_permutations, seed)


def leave_one_out(value_fn: ValueFn, players: Sequence[Hashable]) -> Dict[Hashable, Value]:
    """v(all) - v(all without i): what removing one modality costs."""
    v = _Cached(value_fn)
    full = v(players)
    return {p: full - v([q for q in players if q != p]) for p in players}


__all__ = ['exact_shapley', 'leave_one_out', 'sampled_shapley', 'shapley_values']
