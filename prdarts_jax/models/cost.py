"""What a network costs, counted analytically: parameters and multiply-adds (MAdds).

The DARTS convention: one MAdd per multiply-accumulate of a convolution (stem, depthwise and
pointwise convs, FactorizedReduce's 1×1 convs) and of the linear classifier, at batch 1 in
inference, every output position counted with the full kernel (padding included); pools,
ReLU, BatchNorm, additions and concatenations count nothing. Parameters are those of the
modules (`models/ops.py`, `models/network.py`): affine BatchNorms add scale and bias, the
auxiliary head is excluded, so `network_cost(...).params` equals `network.param_count`.

`op_cost` sizes one candidate op on its cell's channels, stride and input resolution;
`network_cost` sums a final network built from a genotype; `edge_costs` gives, per cell type,
edge and candidate, the op's cost summed over the supernet's cells of that type (the table of
the search's expected-cost penalty): plain Python, nothing is traced or compiled.
`xla_flops` compiles the same network and reads XLA's cost analysis, the cross-check.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp

from prdarts_jax.models.backbone import reduction_indices
from prdarts_jax.models.supernet import edge_inputs
from prdarts_jax.space.genotypes import Genotype, Pair
from prdarts_jax.space.opspec import OpSpec

MEASURES = ("madds", "params")
"""What a cost counts (`config.cost_measure`)."""


@dataclasses.dataclass(frozen=True)
class Cost:
    """Multiply-adds (batch 1, inference) and parameters."""

    madds: int = 0
    params: int = 0

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.madds + other.madds, self.params + other.params)

    def of(self, measure: str) -> int:
        """`madds` or `params` by name."""
        if measure not in MEASURES:
            raise ValueError(f"unknown cost measure {measure!r}; use one of {list(MEASURES)}")
        return getattr(self, measure)

    def text(self) -> str:
        """`params 4.02 M, MAdds 0.65 G`."""
        return f"params {human(self.params)}, MAdds {human(self.madds)}"


def human(n: float) -> str:
    """`4.02 M`, `0.65 G`, `34.13 K`: the largest unit of which `n` is at least a tenth."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= 0.1 * scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n:g}"


def _down(size: int, stride: int) -> int:
    """Output side of a stride-`stride` op with 'same' padding (ceil, as the modules)."""
    return -(-size // stride)


def _bn(c: int, affine: bool) -> int:
    return 2 * c if affine else 0


def pointwise_cost(c_in: int, c_out: int, side: int, affine: bool) -> Cost:
    """1×1 conv + BN at `side`×`side` outputs (ReLUConvBN, or FactorizedReduce's two halves
    together at their output side)."""
    return Cost(side * side * c_in * c_out, c_in * c_out + _bn(c_out, affine))


def taps(side: int, k: int, stride: int = 1, dil: int = 1, padded: bool = True) -> int:
    """(output position, kernel tap) pairs along one axis of a 'same' k×k conv: every tap of
    every output (`padded`, the DARTS convention), or only the taps that read the input, not
    the zero padding (what XLA's cost analysis counts)."""
    out = _down(side, stride)
    if padded:
        return out * k
    pad = dil * (k - 1) // 2
    return sum(0 <= o * stride - pad + t * dil < side for o in range(out) for t in range(k))


def op_cost(op: OpSpec, c: int, stride: int, side: int, affine: bool = True,
            padded: bool = True) -> Cost:
    """One candidate op on `c` channels at `stride`, input `side`×`side` (`padded`: see
    `taps`)."""
    out = _down(side, stride)
    if op.kind == "pool":
        return Cost()       # a pool has no weights; search mode's BN after it is non-affine
    if op.kind == "skip":
        return Cost() if stride == 1 else pointwise_cost(c, c, out, affine)
    total, c_in = Cost(), c
    for i, width in enumerate([c * m for m in op.c_mul] + [c]):
        s = stride if i == 0 else 1
        n = taps(side, op.k, s, op.dil, padded)
        total += Cost(n * n * c_in, op.k * op.k * c_in)   # depthwise
        side = _down(side, s)
        total += pointwise_cost(c_in, width, side, affine)
        c_in = width
    return total


@dataclasses.dataclass(frozen=True)
class CellShape:
    """Where one cell sits: its channels, its inputs' channels and sides (s0, s1)."""

    c: int
    reduction: bool
    reduction_prev: bool
    c_prev_prev: int
    c_prev: int
    side_prev_prev: int
    side: int            # s1's side, the side of every edge's input from s0 or s1


def cell_shapes(c: int, layers: int, side: int, out_mult: tuple[int, int] = (4, 4),
                stem_multiplier: int = 3) -> list[CellShape]:
    """The cells of a network whose normal and reduction cells output `out_mult`×C channels
    (4×C: the concatenation of 4 nodes)."""
    out, c_pp = [], stem_multiplier * c
    c_p, c_cur, side_pp, reduction_prev = c_pp, c, side, False
    for i in range(layers):
        reduction = i in reduction_indices(layers)
        c_cur *= 2 if reduction else 1
        out.append(CellShape(c_cur, reduction, reduction_prev, c_pp, c_p, side_pp, side))
        side_pp, side = side, _down(side, 2) if reduction else side
        c_pp, c_p, reduction_prev = c_p, out_mult[reduction] * c_cur, reduction
    return out


def preprocess_cost(cell: CellShape, affine: bool) -> Cost:
    """The cell's two input preprocessings (FactorizedReduce after a reduction, ReLUConvBN)."""
    if cell.reduction_prev:
        pre0 = pointwise_cost(cell.c_prev_prev, cell.c, _down(cell.side_prev_prev, 2), affine)
    else:
        pre0 = pointwise_cost(cell.c_prev_prev, cell.c, cell.side_prev_prev, affine)
    return pre0 + pointwise_cost(cell.c_prev, cell.c, cell.side, affine)


def edge_op_cost(op: OpSpec, cell: CellShape, source: int, affine: bool = True,
                 padded: bool = True) -> Cost:
    """`op` on an edge of `cell` from state `source` (stride 2 from a reduction's inputs)."""
    stride = 2 if cell.reduction and source < 2 else 1
    side = cell.side if source < 2 else _down(cell.side, 2 if cell.reduction else 1)
    return op_cost(op, cell.c, stride, side, affine, padded)


def stem_cost(c_img: int, c_stem: int, side: int, padded: bool = True) -> Cost:
    """3×3 conv (no bias, 'same') + affine BN."""
    n = taps(side, 3, padded=padded)
    return Cost(n * n * c_img * c_stem, 9 * c_img * c_stem + 2 * c_stem)


def classifier_cost(c_in: int, num_classes: int) -> Cost:
    return Cost(c_in * num_classes, c_in * num_classes + num_classes)


def network_cost(genotype: Genotype, num_classes: int, c: int = 36, layers: int = 20,
                 image_shape: Sequence[int] = (32, 32, 3), stem_multiplier: int = 3,
                 padded: bool = True) -> Cost:
    """The final network of `genotype` (`models/network.Network`, inference, no auxiliary
    head): parameters and MAdds at batch 1 (`padded`: see `taps`). Square inputs."""
    side, c_img = image_shape[0], image_shape[-1]
    total = stem_cost(c_img, stem_multiplier * c, side, padded)
    out_mult = (len(genotype.normal_concat), len(genotype.reduce_concat))
    cells = cell_shapes(c, layers, side, out_mult, stem_multiplier)
    for cell in cells:
        pairs: tuple[Pair, ...] = genotype.reduce if cell.reduction else genotype.normal
        total += preprocess_cost(cell, True)
        for op, source in pairs:
            total += edge_op_cost(op, cell, source, padded=padded)
    last = cells[-1]
    return total + classifier_cost(out_mult[last.reduction] * last.c, num_classes)


def edge_costs(edges: dict[str, Sequence[Sequence[OpSpec]]], c: int, layers: int, side: int,
               measure: str, out_mult: int = 4, stem_multiplier: int = 3
               ) -> dict[str, tuple[tuple[int, ...], ...]]:
    """{cell type: per edge, per candidate: the op's `measure` summed over the network's cells
    of that type}, for a supernet whose cells output `out_mult`×C channels. Each cell prices
    its ops at its own channels, strides and resolution; ops are priced as in the final network
    (affine BatchNorms), so the table is what the ops would add to the derived network."""
    cells = cell_shapes(c, layers, side, (out_mult, out_mult), stem_multiplier)
    out = {}
    for kind, pool in edges.items():
        mine = [cell for cell in cells if cell.reduction == (kind == "reduce")]
        out[kind] = tuple(
            tuple(sum(edge_op_cost(op, cell, source).of(measure) for cell in mine) for op in ops)
            for ops, (_, source) in zip(pool, edge_inputs()))
    return out


def compiled_flops(fn: Callable[..., Any], *args: Any) -> float:
    """XLA's cost analysis of `jax.jit(fn)` on `args`: its `flops` (0 where it lists none)."""
    analysis = jax.jit(fn).lower(*args).compile().cost_analysis()
    if isinstance(analysis, (list, tuple)):      # older JAX: one dict per computation
        analysis = analysis[0]
    return float((analysis or {}).get("flops", 0.0))


def xla_flops(genotype: Genotype, num_classes: int, c: int = 36, layers: int = 20,
              image_shape: Sequence[int] = (32, 32, 3)) -> float:
    """XLA's flops of the same inference forward at batch 1 (compiles it: seconds to a
    minute). XLA counts 2 flops per multiply-add of a conv or dot, only over taps that read the
    input (`network_cost(..., padded=False)`), plus ~1 per element of each elementwise op
    (ReLU, BatchNorm, sums). Depthwise convs are traced as grouped convs, pools as
    reduce_window: the CPU's native kernels are custom calls that XLA counts as 0."""
    from prdarts_jax.models.formulations import use_impls
    from prdarts_jax.models.network import Network

    net = Network(genotype, num_classes, c, layers, auxiliary=False)
    x = jnp.zeros((1, *image_shape), jnp.float32)
    with use_impls("grouped", "reduce_window"):
        variables = jax.eval_shape(lambda: net.init(jax.random.PRNGKey(0), x, False))
        return compiled_flops(lambda v, x: net.apply(v, x, False)[0], variables, x)
