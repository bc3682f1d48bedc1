"""The cycle boundary on the network side: carry survivors' variables, morph children's.

Network variables are keyed `cell_{i}/edge_{e}/{op string}`, so survivors move by dict lookup
and a child's variables are the morphism of its parent's variables in the same cell (weights are
per cell; pools and α are per cell type). Everything outside the edges (stem, preprocessing,
classifier) carries over unchanged.
"""

from __future__ import annotations

from typing import Any, Mapping

import jax
import jax.numpy as jnp

from prdarts_jax.models.backbone import reduction_indices
from prdarts_jax.models.morphisms import morph
from prdarts_jax.search.pools import CellPools, PoolReport
from prdarts_jax.space.opspec import OpSpec

COLLECTIONS = ("params", "batch_stats")
Lineage = dict[str, dict[int, dict[str, tuple[str, int]]]]
"""cell type → edge → child op string → (parent op string, morph kind)."""


def cell_type(i: int, layers: int) -> str:
    return "reduce" if i in reduction_indices(layers) else "normal"


def _op_variables(variables: Mapping, cell: str, edge: str, op: OpSpec) -> dict:
    out = {}
    for coll in COLLECTIONS:
        sub = variables.get(coll, {}).get(cell, {}).get(edge, {})
        if str(op) in sub:
            out[coll] = sub[str(op)]
    return out


def _morph_in_cell(parent_vars: dict, parent: OpSpec, kind: int, key: jax.Array) -> dict:
    """The child's variables, as fresh buffers: a morph may share arrays with its parent, and
    the step programs donate their inputs."""
    full = {coll: parent_vars.get(coll, {}) for coll in COLLECTIONS}
    return jax.tree.map(jnp.copy, morph(kind, parent, full, key)[1])


def transfer_variables(variables: Mapping[str, Any], report: PoolReport, new_pools: CellPools,
                       *, layers: int, key: jax.Array, lineage: Lineage | None = None
                       ) -> dict[str, Any]:
    """Variables of the supernet built on `new_pools`, from those of the previous cycle.

    With `lineage` (the original release's behaviour), every op ever born by a morphism whose
    parent is still on its edge is re-derived from the parent's current weights, overwriting its
    training; without it (default), children are initialised only when born.
    """
    out = {coll: dict(variables.get(coll, {})) for coll in COLLECTIONS}
    for i in range(layers):
        t = cell_type(i, layers)
        cell = f"cell_{i}"
        for coll in COLLECTIONS:
            out[coll][cell] = dict(out[coll].get(cell, {}))
        for e, edge_pool in enumerate(new_pools[t]):
            edge = f"edge_{e}"
            new_edge = _edge_variables(
                variables, cell, edge, edge_pool.ops,
                births={b.child: b for b in report[t][e].added},
                lineage=lineage.get(t, {}).get(e, {}) if lineage else None,
                born_key=jax.random.fold_in(jax.random.fold_in(key, i), e),
                reinit_key=jax.random.fold_in(jax.random.fold_in(key, 10_000 + i), e))
            for coll in COLLECTIONS:
                if new_edge[coll]:
                    out[coll][cell][edge] = new_edge[coll]
                else:
                    out[coll][cell].pop(edge, None)
    return out


def _edge_variables(variables: Mapping, cell: str, edge: str, ops: tuple[OpSpec, ...], *,
                    births: Mapping[OpSpec, Any], lineage: Mapping[str, tuple] | None,
                    born_key: jax.Array, reinit_key: jax.Array) -> dict[str, dict]:
    """The variables of one edge's new pool, per collection and op string.

    A child born now is its parent's morphism (the parent's previous-cycle weights); with a
    lineage, an op whose lineage parent is on the edge is re-derived from that parent's *new*
    weights, so parents are resolved first whatever their place in the pool (an op that
    returned through the revisit fallback stands after the children it once had). A lineage
    cycle (two ops each the other's parent) is broken by carrying the inner one over."""
    index = {op: n for n, op in enumerate(ops)}
    resolved: dict[OpSpec, dict] = {}

    def resolve(op: OpSpec, visiting: frozenset) -> dict:
        if op in resolved:
            return resolved[op]
        n = index[op]
        parent = _lineage_parent(op, lineage, index)
        if op in births:
            b = births[op]
            parent_vars = _op_variables(variables, cell, edge, b.parent)
            op_vars = _morph_in_cell(parent_vars, b.parent, b.kind,
                                     jax.random.fold_in(born_key, n))
        elif parent is not None and parent[0] not in visiting:
            parent_vars = {c: v for c, v in resolve(parent[0], visiting | {op}).items() if v}
            op_vars = _morph_in_cell(parent_vars, parent[0], parent[1],
                                     jax.random.fold_in(reinit_key, n))
        else:
            op_vars = _op_variables(variables, cell, edge, op)
        resolved[op] = op_vars
        return op_vars

    new_edge: dict[str, dict] = {coll: {} for coll in COLLECTIONS}
    for op in ops:
        for coll, tree in resolve(op, frozenset()).items():
            if tree:
                new_edge[coll][str(op)] = tree
    return new_edge


def _lineage_parent(op: OpSpec, lineage: Mapping[str, tuple] | None,
                    on_edge: Mapping[OpSpec, int]) -> tuple[OpSpec, int] | None:
    """(parent, morph kind) of `op` in the lineage, if that parent is on the edge."""
    if not lineage or str(op) not in lineage:
        return None
    parent_s, kind = lineage[str(op)]
    parent = OpSpec.parse(parent_s)
    return (parent, kind) if parent in on_edge else None


def update_lineage(lineage: Lineage, report: PoolReport) -> Lineage:
    """Adds this boundary's births to the lineage (JSON-friendly nested dicts)."""
    out = {t: {e: dict(v) for e, v in lineage.get(t, {}).items()} for t in ("normal", "reduce")}
    for t in ("normal", "reduce"):
        for e, rep in enumerate(report[t]):
            for b in rep.added:
                out[t].setdefault(e, {})[str(b.child)] = (str(b.parent), b.kind)
    return out
