"""The skip limit at derivation (`genotype_max_skips`, P-DARTS): at most M skips in the normal
cell; unset is the unlimited derivation, unchanged."""

import numpy as np
import pytest

from prdarts_jax.space.genotypes import derive_genotype, edge_score
from prdarts_jax.space.opspec import OpSpec
from prdarts_jax.space.spaces import NODES

C3, C5, SKIP = OpSpec.conv(3), OpSpec.conv(5), OpSpec.skip()
MAXP, AVGP = OpSpec.pool("max"), OpSpec.pool("avg")
POOL = (SKIP, C3, MAXP, C5, AVGP)


def _reference(edges, alphas, rule):
    """The derivation as it was before the skip limit existed (a copy)."""
    cells = {}
    for t in ("normal", "reduce"):
        pairs, e = [], 0
        for j in range(NODES):
            cands = []
            for i in range(j + 2):
                score, best = edge_score(edges[t][e], alphas[t][e], rule)
                cands.append((-score, i, edges[t][e][best]))
                e += 1
            top = sorted(sorted(cands)[:2], key=lambda c: c[1])
            pairs += [(op, i) for _, i, op in top]
        cells[t] = tuple(pairs)
    return cells["normal"], cells["reduce"]


def _skip_heavy(seed: int):
    """Random pools of 2..5 ops on every edge (most hold skip), α favouring skip."""
    rng = np.random.default_rng(seed)
    edges, alphas = {}, {}
    for t in ("normal", "reduce"):
        ops = [tuple(POOL[i] for i in sorted(rng.choice(5, rng.integers(2, 6), replace=False)))
               for _ in range(14)]
        ops = [o if SKIP in o or rng.random() < 0.2 else (SKIP,) + o[1:] for o in ops]
        edges[t] = ops
        alphas[t] = [rng.normal(0, 1, len(o)) + np.where([op == SKIP for op in o], 2.0, 0.0)
                     for o in ops]
    return edges, alphas


def _skips(cell) -> int:
    return sum(op == SKIP for op, _ in cell)


@pytest.mark.parametrize("rule", ["max_weight", "group_mass"])
@pytest.mark.parametrize("seed", range(6))
def test_the_limit_holds_and_unset_is_todays_derivation(seed, rule):
    edges, alphas = _skip_heavy(seed)
    unlimited = derive_genotype(edges, alphas, rule=rule)
    assert (unlimited.normal, unlimited.reduce) == _reference(edges, alphas, rule)
    assert derive_genotype(edges, alphas, rule=rule, max_skips=8) == unlimited
    assert _skips(unlimited.normal) >= 3   # the constructed α do favour skips
    for m in range(4):
        g = derive_genotype(edges, alphas, rule=rule, max_skips=m)
        assert _skips(g.normal) <= m
        assert g.reduce == unlimited.reduce            # only the normal cell is limited
        limited_already = derive_genotype(edges, alphas, rule=rule, max_skips=_skips(g.normal))
        assert limited_already == g


def test_the_weakest_skip_loses_first_and_its_edge_is_rescored_by_its_best_other_op():
    """Every normal node's edges hold (skip, conv); node 0's edges carry the strongest skips.
    With M=1 only node 0's stronger skip (edge 1) stays; edge 0 falls back to its conv."""
    edges = {t: [(SKIP, C3)] * 14 for t in ("normal", "reduce")}
    alphas = {t: [np.array([1.0, 0.0])] * 14 for t in ("normal", "reduce")}
    alphas["normal"] = list(alphas["normal"])
    alphas["normal"][0], alphas["normal"][1] = np.array([3.0, 0.0]), np.array([4.0, 0.0])
    g = derive_genotype(edges, alphas, max_skips=1)
    assert g.normal[:2] == ((C3, 0), (SKIP, 1))
    assert _skips(g.normal) == 1
    assert all(op == C3 for op, _ in g.normal[2:])
    assert _skips(derive_genotype(edges, alphas, max_skips=0).normal) == 0


def test_an_edge_of_only_skip_drops_out_of_its_node():
    """Node 1 (edges 2, 3, 4): edge 2 holds only skip, the strongest; with M=0 the node takes
    edges 3 and 4 instead."""
    edges = {t: [(C3, MAXP)] * 14 for t in ("normal", "reduce")}
    alphas = {t: [np.array([0.0, 0.0])] * 14 for t in ("normal", "reduce")}
    edges["normal"] = list(edges["normal"])
    alphas["normal"] = list(alphas["normal"])
    edges["normal"][2], alphas["normal"][2] = (SKIP,), np.array([0.0])
    assert derive_genotype(edges, alphas).normal[2:4] == ((SKIP, 0), (C3, 1))
    g = derive_genotype(edges, alphas, max_skips=0)
    assert g.normal[2:4] == ((C3, 1), (C3, 2))
    assert _skips(g.normal) == 0


def test_a_node_with_two_skip_only_edges_keeps_them():
    """Node 0 has just two edges: if both hold only skip, no limit can remove them."""
    edges = {t: [(C3,)] * 14 for t in ("normal", "reduce")}
    edges["normal"] = [(SKIP,), (SKIP,)] + [(SKIP, C3)] * 12
    alphas = {t: [np.zeros(len(o)) for o in edges[t]] for t in ("normal", "reduce")}
    g = derive_genotype(edges, alphas, max_skips=0)
    assert g.normal[:2] == ((SKIP, 0), (SKIP, 1))
    assert _skips(g.normal) == 2
