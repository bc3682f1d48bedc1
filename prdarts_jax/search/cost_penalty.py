"""The expected-cost penalty of the α loss (`config.cost_penalty` = λ > 0, docs/variants.md).

    α loss = cross entropy + λ · E[cost],   E[cost] = Σ_type Σ_edge Σ_o softmax(α_edge)_o · cost_o / R

cost_o is the op's MAdds or parameters (`config.cost_measure`) summed over the supernet's cells
of that type, each at its own channels, stride and resolution (`models.cost.edge_costs`); R is
the cost of the same supernet with one `conv(k3,[])` (a 3×3 separable conv) on every edge. So
E[cost] = 1 means "as costly as a 3×3 separable conv everywhere", whatever the network's size,
dataset or pools, and λ is in units of the cross entropy. The table is a host-side constant of
a cycle's structure, baked into its programs (and part of `programs_for`'s key); only the α
gradient sees it (`bilevel.make_programs`).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Sequence

import jax
import jax.numpy as jnp

from prdarts_jax.models.cost import edge_costs
from prdarts_jax.models.supernet import Supernet
from prdarts_jax.space.opspec import OpSpec
from prdarts_jax.space.spaces import CELL_TYPES, NODES

if TYPE_CHECKING:  # the benchmarks import the step programs without ml_collections
    import ml_collections

REFERENCE_OP = OpSpec.conv(3)
"""The op whose cost on every edge is the unit of E[cost]."""


@dataclasses.dataclass(frozen=True)
class CostPenalty:
    """λ and the normalised per-(cell type, edge, candidate) cost table; hashable."""

    lam: float
    normal: tuple[tuple[float, ...], ...]
    reduce: tuple[tuple[float, ...], ...]

    def expected_cost(self, alphas: dict) -> jax.Array:
        """E[cost] under softmax(α) per edge (a scalar; differentiable in α)."""
        total = jnp.zeros((), jnp.float32)
        for t in CELL_TYPES:
            for a, costs in zip(alphas[t], getattr(self, t)):
                total = total + jnp.dot(jax.nn.softmax(a), jnp.asarray(costs, jnp.float32))
        return total


def cost_table(net: Supernet, image_shape: Sequence[int], measure: str
               ) -> dict[str, tuple[tuple[float, ...], ...]]:
    """The normalised table of `net` (see the module doc) on square `image_shape` inputs."""
    side = image_shape[0]
    out_mult = NODES if net.cell_output == "concat" else 1
    geometry = dict(c=net.c, layers=net.layers, side=side, measure=measure,
                    out_mult=out_mult, stem_multiplier=net.stem_multiplier)
    edges = {"normal": net.normal, "reduce": net.reduce}
    raw = edge_costs(edges, **geometry)
    ref = edge_costs({t: [(REFERENCE_OP,)] * len(edges[t]) for t in CELL_TYPES}, **geometry)
    unit = sum(costs[0] for t in CELL_TYPES for costs in ref[t])
    return {t: tuple(tuple(v / unit for v in costs) for costs in raw[t]) for t in CELL_TYPES}


def penalty_of(config: ml_collections.ConfigDict, net: Supernet,
               image_shape: Sequence[int]) -> CostPenalty | None:
    """The cycle's penalty, or None with `cost_penalty` 0 (the paper: programs unchanged)."""
    if not config.cost_penalty:
        return None
    table = cost_table(net, image_shape, config.cost_measure)
    return CostPenalty(float(config.cost_penalty), table["normal"], table["reduce"])
