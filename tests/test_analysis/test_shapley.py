"""Shapley values and leave-one-out over modalities, on set functions computed by hand."""
import itertools

import pytest
import torch

from mmfusion.analysis import exact_shapley, leave_one_out, sampled_shapley, shapley_values

# A three-player game: v(empty)=0, v(a)=10, v(b)=20, v(c)=30, v(ab)=40,
# v(ac)=50, v(bc)=50, v(abc)=90. By hand, phi_a = sum_S w(|S|) (v(S+a) - v(S)):
#   (1/3)(10 - 0) + (1/6)(40 - 20) + (1/6)(50 - 30) + (1/3)(90 - 50) = 70/3
#   phi_b = (1/3)20 + (1/6)30 + (1/6)20 + (1/3)40 = 85/3
#   phi_c = (1/3)30 + (1/6)40 + (1/6)30 + (1/3)50 = 115/3      (sum 90 = v(abc) - v(empty))
GAME = {frozenset(): 0.0, frozenset('a'): 10.0, frozenset('b'): 20.0, frozenset('c'): 30.0,
        frozenset('ab'): 40.0, frozenset('ac'): 50.0, frozenset('bc'): 50.0,
        frozenset('abc'): 90.0}


def test_exact_three_players_by_hand():
    phi = exact_shapley(lambda s: GAME[frozenset(s)], ['a', 'b', 'c'])
    assert phi['a'] == pytest.approx(70 / 3)
    assert phi['b'] == pytest.approx(85 / 3)
    assert phi['c'] == pytest.approx(115 / 3)
    assert sum(phi.values()) == pytest.approx(GAME[frozenset('abc')] - GAME[frozenset()])


def test_each_coalition_evaluated_once_and_leave_one_out():
    calls = []

    def v(s):
        calls.append(frozenset(s))
        return GAME[frozenset(s)]

    exact_shapley(v, ['a', 'b', 'c'])
    assert len(calls) == len(set(calls)) == 8
    loo = leave_one_out(lambda s: GAME[frozenset(s)], ['a', 'b', 'c'])
    assert loo == {'a': 40.0, 'b': 40.0, 'c': 50.0}


def test_per_sample_tensors_and_efficiency():
    gen = torch.Generator().manual_seed(0)
    players = ['p0', 'p1', 'p2', 'p3']
    table = {frozenset(s): torch.rand(5, generator=gen)
             for k in range(5) for s in itertools.combinations(players, k)}
    phi = shapley_values(lambda s: table[frozenset(s)], players)
    total = sum(phi.values())
    torch.testing.assert_close(total, table[frozenset(players)] - table[frozenset()])
    # a dummy player (adds nothing anywhere) gets zero
    dummy = exact_shapley(lambda s: GAME[frozenset(s) - {'d'}], ['a', 'b', 'c', 'd'])
    assert dummy['d'] == pytest.approx(0.0)
    assert dummy['a'] == pytest.approx(70 / 3)


def test_sampled_is_efficient_and_close_to_exact():
    players = list('abcdefg')  # 7 players: beyond the exact limit of 6

    def v(s):  # additive part plus a pairwise interaction between a and b
        s = set(s)
        return sum(ord(p) - 96 for p in s) + (6.0 if {'a', 'b'} <= s else 0.0)

    phi = shapley_values(v, players, exact_max=6, num_permutations=200, seed=1)
    assert sum(phi.values()) == pytest.approx(v(players) - v([]))
    exact = exact_shapley(v, players)
    assert exact['a'] == pytest.approx(1 + 3.0) and exact['g'] == pytest.approx(7.0)
    for p in players:
        assert phi[p] == pytest.approx(exact[p], abs=0.6)
    assert sampled_shapley(v, players, 10, seed=2)['c'] == pytest.approx(3.0)  # no interaction
