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
            births = {b.child: b for b in report[t][e].added}
            new_edge: dict[str, dict] = {coll: {} for coll in COLLECTIONS}
            for n, op in enumerate(edge_pool.ops):
                if op in births:
                    b = births[op]
                    k = jax.random.fold_in(jax.random.fold_in(jax.random.fold_in(
                        key, i), e), n)
                    parent_vars = _op_variables(variables, cell, edge, b.parent)
                    op_vars = _morph_in_cell(parent_vars, b.parent, b.kind, k)
                elif lineage and str(op) in lineage[t].get(e, {}) and OpSpec.parse(
                        lineage[t][e][str(op)][0]) in edge_pool.ops:
                    parent_s, kind = lineage[t][e][str(op)]
                    parent = OpSpec.parse(parent_s)
                    parent_vars = {coll: new_edge[coll][parent_s] for coll in COLLECTIONS
                                   if parent_s in new_edge[coll]}
                    k = jax.random.fold_in(jax.random.fold_in(jax.random.fold_in(
                        key, 10_000 + i), e), n)
                    op_vars = _morph_in_cell(parent_vars, parent, kind, k)
                else:
                    op_vars = _op_variables(variables, cell, edge, op)
                for coll, tree in op_vars.items():
                    if tree:
                        new_edge[coll][str(op)] = tree
            for coll in COLLECTIONS:
                if new_edge[coll]:
                    out[coll][cell][edge] = new_edge[coll]
                else:
                    out[coll][cell].pop(edge, None)
    return out


def update_lineage(lineage: Lineage, report: PoolReport) -> Lineage:
    """Adds this boundary's births to the lineage (JSON-friendly nested dicts)."""
    out = {t: {e: dict(v) for e, v in lineage.get(t, {}).items()} for t in ("normal", "reduce")}
    for t in ("normal", "reduce"):
        for e, rep in enumerate(report[t]):
            for b in rep.added:
                out[t].setdefault(e, {})[str(b.child)] = (str(b.parent), b.kind)
    return out
