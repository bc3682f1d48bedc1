"""Search spaces: the morphism restrictions DL/DR/UR, legal morphisms, enumeration and sizes.

A search space is the set of conv configurations that the six morphisms (SPEC §2) can reach from
conv k3 dil1 c_mul=() without breaking the restrictions, plus the two pools and skip.
`python -m prdarts_jax.space` prints the sizes for DARTS' 8-op space and each preset.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Iterable, Mapping

from prdarts_jax.space.opspec import OpSpec

MORPH_NAMES = ("kernel_up", "kernel_down", "dil_up", "dil_down", "insert_layer", "widen")
"""The six morphisms in the spec's order (indices 0..5)."""

NODES = 4
CELL_TYPES = ("normal", "reduce")
"""A cell is a normal cell or a reduction cell; each type has its own pools and α."""
EDGES_PER_CELL = sum(range(2, 2 + NODES))
OPS_PER_CELL = 2 * NODES


@dataclasses.dataclass(frozen=True)
class SearchSpace:
    """Morphism restrictions; `None` means unbounded."""

    name: str
    min_k: int
    max_k: int
    max_dil: int
    max_len: int | None
    max_sum: int | None
    max_width: int | None

    def __post_init__(self) -> None:
        errors = []
        if self.min_k < 1 or self.min_k % 2 == 0 or self.max_k % 2 == 0:
            errors.append(f"kernel bounds must be odd and >= 1 (min_k={self.min_k}, "
                          f"max_k={self.max_k})")
        if self.min_k > self.max_k:
            errors.append(f"min_k={self.min_k} > max_k={self.max_k}")
        if not self.min_k <= 3 <= self.max_k:
            errors.append("kernel bounds must admit the initial conv's k=3")
        if self.max_dil < 1:
            errors.append(f"max_dil must be >= 1, got {self.max_dil}")
        for field in ("max_len", "max_sum", "max_width"):
            v = getattr(self, field)
            low = 1 if field == "max_width" else 0
            if v is not None and v < low:
                errors.append(f"{field} must be >= {low} or None, got {v}")
        if errors:
            raise ValueError(f"invalid search space {self.name!r}: " + "; ".join(errors))

    def allows(self, op: OpSpec) -> bool:
        """Whether `op` lies within the restrictions (pools and skip always do)."""
        if not op.is_conv:
            return True
        m = op.c_mul
        return (self.min_k <= op.k <= self.max_k and op.dil <= self.max_dil
                and not (op.k == 1 and op.dil > 1)
                and (self.max_len is None or len(m) <= self.max_len)
                and (self.max_sum is None or sum(m) <= self.max_sum)
                and (self.max_width is None or max(m, default=0) <= self.max_width)
                and all(a >= b for a, b in zip(m, m[1:])))


PRESETS: Mapping[str, SearchSpace] = {
    "DL": SearchSpace("DL", 3, 7, 2, 1, 1, 1),
    "DR": SearchSpace("DR", 1, 7, 2, 1, 5, 5),
    "UR": SearchSpace("UR", 1, 7, 2, None, None, None),
}


def get_space(name: str, **overrides: int | None) -> SearchSpace:
    """A preset by name, optionally with some restrictions overridden (a custom space)."""
    key = name.upper()
    if key not in PRESETS:
        raise ValueError(f"unknown search space {name!r}; expected one of {sorted(PRESETS)}")
    if not overrides:
        return PRESETS[key]
    unknown = set(overrides) - {f.name for f in dataclasses.fields(SearchSpace)} - {"name"}
    if unknown:
        raise ValueError(f"unknown search-space restriction(s) {sorted(unknown)}")
    return dataclasses.replace(PRESETS[key], name=f"{key}-custom", **overrides)


def _smallest_first(c_mul: tuple[int, ...]) -> int:
    return c_mul.index(min(c_mul))


def apply_change(kind: int, op: OpSpec) -> OpSpec:
    """The child op that morphism `kind` (0..5) makes of `op`, ignoring legality."""
    k, dil, m = op.k, op.dil, op.c_mul
    if kind == 0:
        return OpSpec.conv(k + 2, m, dil)
    if kind == 1:
        return OpSpec.conv(k - 2, m, dil)
    if kind == 2:
        return OpSpec.conv(k, m, dil + 1)
    if kind == 3:
        return OpSpec.conv(k, m, dil - 1)
    if kind == 4:
        return OpSpec.conv(k, m + (1,), dil)
    if kind == 5:
        i = _smallest_first(m)
        return OpSpec.conv(k, m[:i] + (m[i] + 1,) + m[i + 1:], dil)
    raise ValueError(f"unknown morphism kind {kind}; expected 0..5 ({MORPH_NAMES})")


def is_legal(kind: int, op: OpSpec, space: SearchSpace) -> bool:
    """The spec's refusal rules (SPEC §2 table) for morphism `kind` on `op`."""
    if not op.is_conv:
        return False
    k, dil, m = op.k, op.dil, op.c_mul
    full_sum = space.max_sum is not None and sum(m) >= space.max_sum
    if kind == 0:
        return k + 2 <= space.max_k
    if kind == 1:
        return k - 2 >= space.min_k and not (k - 2 == 1 and dil >= 2)
    if kind == 2:
        return k != 1 and dil < space.max_dil
    if kind == 3:
        return dil > 1 and not (k == 1 and dil == 2)
    if kind == 4:
        return not ((space.max_len is not None and len(m) >= space.max_len) or full_sum)
    if kind == 5:
        return bool(m) and not (
            (space.max_width is not None and m[_smallest_first(m)] >= space.max_width)
            or full_sum)
    raise ValueError(f"unknown morphism kind {kind}; expected 0..5 ({MORPH_NAMES})")


def legal_morphisms(op: OpSpec, space: SearchSpace) -> tuple[int, ...]:
    """The morphism kinds (0..5) that may be applied to `op` in `space`."""
    return tuple(kind for kind in range(len(MORPH_NAMES)) if is_legal(kind, op, space))


def reachable_convs(space: SearchSpace, max_steps: int | None = None,
                    start: OpSpec = OpSpec.conv(3)) -> frozenset[OpSpec]:
    """Conv configurations reachable from `start` within `max_steps` morphs (None: all).

    An unbounded space (UR) is infinite: it needs `max_steps`.
    """
    if max_steps is None and None in (space.max_len, space.max_sum, space.max_width):
        raise ValueError(f"space {space.name!r} is unbounded: give max_steps")
    seen = {start}
    frontier = [start]
    step = 0
    while frontier and (max_steps is None or step < max_steps):
        nxt = []
        for op in frontier:
            for kind in legal_morphisms(op, space):
                child = apply_change(kind, op)
                if child not in seen:
                    seen.add(child)
                    nxt.append(child)
        frontier = nxt
        step += 1
    return frozenset(seen)


def cell_configurations(ops_per_edge: int, nodes: int = NODES) -> int:
    """∏_{n=2..nodes+1} C(n, 2) · |ops|^(2·nodes): a cell picks 2 inputs and 2 ops per node."""
    return math.prod(math.comb(n, 2) for n in range(2, 2 + nodes)) * ops_per_edge ** (2 * nodes)


DARTS_OPS = 8
"""DARTS' 7 ops plus `none` (its cell count, ≈3.0e9, is computed with 8)."""


def size_table(steps: int = 5) -> list[dict]:
    """Rows of (space, conv configs, ops per edge, cell configurations, reachable in `steps`)."""
    rows = [dict(space="DARTS", convs=4, ops=DARTS_OPS,
                 cells=cell_configurations(DARTS_OPS), within=None)]
    for space in PRESETS.values():
        within = len(reachable_convs(space, steps))
        bounded = None not in (space.max_len, space.max_sum, space.max_width)
        convs = len(reachable_convs(space)) if bounded else None
        n_ops = (convs if bounded else within) + 3
        rows.append(dict(space=space.name, convs=convs, ops=n_ops if bounded else None,
                         cells=cell_configurations(n_ops) if bounded else None, within=within,
                         cells_within=cell_configurations(within + 3)))
    return rows


def format_table(rows: Iterable[dict], steps: int = 5) -> str:
    lines = [f"| space | conv configs | ops per edge | cell configurations | "
             f"convs within {steps} morphs | cells within {steps} morphs |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        fmt = lambda v: "unbounded" if v is None else (f"{v:.2e}" if v > 10**6 else str(v))
        within = "-" if r["within"] is None else str(r["within"])
        cw = "-" if r.get("cells_within") is None else f"{r['cells_within']:.2e}"
        lines.append(f"| {r['space']} | {fmt(r['convs'])} | {fmt(r['ops'])} | "
                     f"{fmt(r['cells'])} | {within} | {cw} |")
    dl = next(r for r in rows if r["space"] == "DL")["cells"]
    darts = rows[0]["cells"]
    lines.append(f"\nDL / DARTS cell-space ratio: {dl / darts:.1f}")
    return "\n".join(lines)

