"""The cycle boundary on the network side (search/boundary.py), in the re-initialisation mode
(`reinit_morphed_every_cycle=True`, the original release's behaviour): a lineage child is
re-derived from its parent's new weights whatever the order of the pool."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np

from prdarts_jax.models.supernet import Supernet, init_alphas
from prdarts_jax.search.boundary import transfer_variables, update_lineage
from prdarts_jax.search.pools import (
    Birth,
    CellPools,
    EdgePool,
    EdgeReport,
    PoolReport,
    initial_pools,
    step_pools,
)
from prdarts_jax.search.structure import init_variables
from prdarts_jax.space.opspec import OpSpec
from prdarts_jax.space.spaces import CELL_TYPES, EDGES_PER_CELL, SearchSpace

C, LAYERS, IMAGE = 4, 3, (8, 8, 1)
SMALL = SearchSpace("small", 3, 5, 1, 1, None, None)
"""Convs k3/k5 with at most one inserted layer: four convs, so an edge's history runs out by
cycle 2 and the revisit fallback brings dropped ops back."""


def _supernet(pools: CellPools) -> Supernet:
    edges = {t: tuple(e.ops for e in pools[t]) for t in CELL_TYPES}
    return Supernet(edges["normal"], edges["reduce"], 10, c=C, layers=LAYERS)


def _variables(pools: CellPools, seed: int) -> dict:
    net = _supernet(pools)
    alphas = init_alphas(jax.random.PRNGKey(seed), net.normal, net.reduce)
    return init_variables(net, jax.random.PRNGKey(seed + 1), IMAGE, alphas)


def _shapes(tree) -> dict:
    return jax.tree.map(lambda a: (a.shape, a.dtype), dict(tree))


def _expected_shapes(pools: CellPools) -> dict:
    net = _supernet(pools)
    alphas = init_alphas(jax.random.PRNGKey(0), net.normal, net.reduce)
    return _shapes(jax.eval_shape(lambda: net.init(jax.random.PRNGKey(0),
                                                   jnp.zeros((2, *IMAGE)), alphas, False)))


def test_a_returned_lineage_parent_behind_its_child_is_resolved_first():
    """C (conv5 with an inserted layer) was born from B (conv5), which was dropped; B now
    returns as a child of A (conv3) and is appended after C. C must come from B's new weights."""
    a, b, c = OpSpec.conv(3), OpSpec.conv(5), OpSpec.conv(5, (1,))
    before = CellPools(normal=(EdgePool((a, c), {b}),) * EDGES_PER_CELL,
                       reduce=(EdgePool((a, c), {b}),) * EDGES_PER_CELL)
    after = CellPools(normal=(EdgePool((a, c, b)),) * EDGES_PER_CELL,
                      reduce=(EdgePool((a, c, b)),) * EDGES_PER_CELL)
    edge = EdgeReport(ops=(a, c), alpha=(0.0, 0.0), dropped=(), survivors=(a, c),
                      added=(Birth(b, a, 0, returned=True),), failed_tries=200)
    report = PoolReport(keep=3, morphs=1, final=False, normal=(edge,) * EDGES_PER_CELL,
                        reduce=(edge,) * EDGES_PER_CELL)
    lineage = {t: {e: {str(c): (str(b), 4)} for e in range(EDGES_PER_CELL)} for t in CELL_TYPES}
    old = _variables(before, seed=0)
    new = transfer_variables(old, report, after, layers=LAYERS, key=jax.random.PRNGKey(7),
                             lineage=lineage)
    assert _shapes(new) == _expected_shapes(after)
    for i in range(LAYERS):
        for e in range(EDGES_PER_CELL):
            ops = new["params"][f"cell_{i}"][f"edge_{e}"]
            a_old = old["params"][f"cell_{i}"][f"edge_{e}"][str(a)]["layer_0"]["depthwise"]
            # B is A's kernel_up (zero-padded 3x3 -> 5x5); C keeps B's layer and adds one
            chex.assert_trees_all_equal(ops[str(b)]["layer_0"]["depthwise"][1:-1, 1:-1],
                                        a_old)
            chex.assert_trees_all_equal(ops[str(c)]["layer_0"], ops[str(b)]["layer_0"])
    net = _supernet(after)
    alphas = init_alphas(jax.random.PRNGKey(1), net.normal, net.reduce)
    logits = jax.jit(lambda v: net.apply(v, jnp.ones((2, *IMAGE)), alphas, False))(new)
    assert logits.shape == (2, 10) and bool(jnp.all(jnp.isfinite(logits)))


def _parent_behind_child(pools: CellPools, lineage: dict) -> bool:
    for t in CELL_TYPES:
        for e, edge in enumerate(pools[t]):
            where = {str(op): n for n, op in enumerate(edge.ops)}
            for child, (parent, _) in lineage.get(t, {}).get(e, {}).items():
                if child in where and parent in where and where[parent] > where[child]:
                    return True
    return False


def test_reinit_mode_over_cycles_with_revisits_keeps_the_supernet_whole():
    """Four boundaries in a space too small for new children: revisited ops come back, some
    after their lineage children, and every cycle's variables still fit its supernet."""
    pools, lineage = initial_pools(), {}
    variables = _variables(pools, seed=0)
    rng = np.random.default_rng(0)
    behind = 0
    for cycle in range(4):
        alphas = {t: [rng.normal(size=len(e)) + [1.0 if o.is_conv else -1.0 for o in e.ops]
                      for e in pools[t]] for t in CELL_TYPES}
        new_pools, report = step_pools(pools, alphas, keep=4, morphs=2, final=False,
                                       space=SMALL, rng=rng)
        lineage = update_lineage(lineage, report)
        behind += _parent_behind_child(new_pools, lineage)
        variables = transfer_variables(variables, report, new_pools, layers=LAYERS,
                                       key=jax.random.PRNGKey(100 + cycle), lineage=lineage)
        assert _shapes(variables) == _expected_shapes(new_pools), f"boundary {cycle + 1}"
        pools = new_pools
    assert behind, "the case under test (a lineage parent behind its child) did not occur"
    net = _supernet(pools)
    alphas = init_alphas(jax.random.PRNGKey(1), net.normal, net.reduce)
    logits = jax.jit(lambda v: net.apply(v, jnp.ones((2, *IMAGE)), alphas, False))(variables)
    assert bool(jnp.all(jnp.isfinite(logits)))
