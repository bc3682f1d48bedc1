"""The search network (SPEC §3): cells of mixed edges over each edge's own candidate pool.

Parameters live at `cell_{i}/edge_{e}/{op string}/…`, so that carrying survivors into the next
cycle is a dict operation (`transfer_variables`). α is a separate pytree
`{"normal": [α_edge, …14], "reduce": [...]}` of ragged vectors, shared by all cells of a type.
"""

from __future__ import annotations

from typing import Sequence

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp

from prdarts_jax.models.backbone import Stem, reduction_indices
from prdarts_jax.models.formulations import node_state, weighted_sum
from prdarts_jax.models.ops import FactorizedReduce, ReLUConvBN, make_op, uniform_fan_in
from prdarts_jax.models.relaxation import GumbelSample, edge_weights
from prdarts_jax.space.opspec import OpSpec
from prdarts_jax.space.spaces import CELL_TYPES, EDGES_PER_CELL, NODES

EdgeOps = tuple[tuple[OpSpec, ...], ...]


def edge_inputs(nodes: int = NODES) -> list[tuple[int, int]]:
    """(edge index, input state index) for each edge; node j has edges from states 0..j+1."""
    out, e = [], 0
    for j in range(nodes):
        for i in range(j + 2):
            out.append((e, i))
            e += 1
    return out


class MixedEdge(nn.Module):
    """Σ_o w_o · o(x) over the edge's pool."""

    ops: tuple[OpSpec, ...]
    c: int
    stride: int

    @nn.compact
    def __call__(self, x: jax.Array, weights: jax.Array, train: bool) -> jax.Array:
        chex.assert_shape(weights, (len(self.ops),))
        once = not self.is_initializing()  # (initialising draws: the inlined modules' streams)
        outs = [make_op(op, self.c, self.stride, False, name=str(op), traced_once=once)(x, train)
                for op in self.ops]
        return weighted_sum(weights, outs)


class SearchCell(nn.Module):
    edges: EdgeOps
    c: int
    reduction: bool
    reduction_prev: bool
    reduce_output: str = "concat"

    @nn.compact
    def __call__(self, s0: jax.Array, s1: jax.Array, weights: Sequence[jax.Array],
                 train: bool) -> jax.Array:
        s0 = (FactorizedReduce(self.c, False, name="pre0") if self.reduction_prev
              else ReLUConvBN(self.c, False, name="pre0"))(s0, train)
        s1 = ReLUConvBN(self.c, False, name="pre1")(s1, train)
        states = [node_state(s0), node_state(s1)]
        inputs = edge_inputs()
        e = 0
        for j in range(NODES):
            node = 0
            for _ in range(j + 2):
                _, i = inputs[e]
                stride = 2 if self.reduction and i < 2 else 1
                node = node + MixedEdge(self.edges[e], self.c, stride, name=f"edge_{e}")(
                    states[i], weights[e], train)
                e += 1
            states.append(node_state(node))
        nodes = states[2:]
        if self.reduce_output == "mean":
            return sum(nodes) / len(nodes)
        return jnp.concatenate(nodes, axis=-1)


class Supernet(nn.Module):
    """Stem, `layers` cells (reductions at L//3 and 2L//3), global average pool, linear."""

    normal: EdgeOps
    reduce: EdgeOps
    num_classes: int
    c: int = 16
    layers: int = 8
    stem_multiplier: int = 3
    cell_output: str = "concat"

    @nn.compact
    def __call__(self, x: jax.Array, alphas: dict, train: bool,
                 sample: GumbelSample | None = None) -> jax.Array:
        """Logits; the edges' weights are softmax(α), or a Concrete sample of α with `sample`
        (`models/relaxation.py`)."""
        chex.assert_rank(x, 4)
        weights = edge_weights(alphas, sample)
        c_cur = self.stem_multiplier * self.c
        s0 = s1 = Stem(c_cur, name="stem")(x, train)
        c_cur = self.c
        reduction_prev = False
        for i in range(self.layers):
            reduction = i in reduction_indices(self.layers)
            if reduction:
                c_cur *= 2
            kind = "reduce" if reduction else "normal"
            cell = SearchCell(getattr(self, kind), c_cur, reduction, reduction_prev,
                              self.cell_output, name=f"cell_{i}")
            s0, s1 = s1, cell(s0, s1, weights[kind], train)
            reduction_prev = reduction
        pooled = jnp.mean(s1, axis=(1, 2))
        return nn.Dense(self.num_classes, name="classifier",
                        kernel_init=uniform_fan_in(pooled.shape[-1]),
                        bias_init=uniform_fan_in(pooled.shape[-1]))(pooled)


def init_alphas(key: jax.Array, normal: EdgeOps, reduce: EdgeOps, scale: float = 1e-3) -> dict:
    """α reset as in the original: scale·N(0, 1) per entry, one vector per edge and cell type."""
    out = {}
    for t, edges in zip(CELL_TYPES, (normal, reduce)):
        keys = jax.random.split(jax.random.fold_in(key, CELL_TYPES.index(t)), len(edges))
        out[t] = [scale * jax.random.normal(k, (len(ops),)) for k, ops in zip(keys, edges)]
    return out


def check_edges(edges: EdgeOps) -> None:
    if len(edges) != EDGES_PER_CELL or any(len(ops) == 0 for ops in edges):
        raise ValueError(f"a cell needs {EDGES_PER_CELL} non-empty edges, got "
                         f"{[len(ops) for ops in edges]}")
