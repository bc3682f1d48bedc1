"""Progressive deepening (beyond the paper; P-DARTS grows its supernet 5→11→17 cells): the
supernet's depth in each cycle, and how a cycle boundary carries variables into a deeper one.

`config.schedule.cells` gives one depth per cycle (empty: `config.layers` in every cycle). Cells
fall into five groups by where the two reduction cells sit (`models.backbone.reduction_indices`):
the normal cells before the first reduction (stage 0), the first reduction cell, the normal cells
between the reductions (stage 1), the second reduction cell, the normal cells after it (stage 2).
A cell's identity is (group, position in group): a deeper supernet keeps the old cells at the same
positions of their groups and appends the new normal cells at the end of each stage. No group is
shorter at a greater depth, so the map exists whenever the depth grows or stays (shrinking is
refused by the config's validation).

Variables move per sub-module: the stem, the classifier, and in each cell `pre0`, `pre1` and
each op of each edge (`edge_{e}/{op}`). A sub-module is carried whole, bit for bit, when the
mapped old cell (for the stem and the classifier: the old net) has it with exactly the same
variables (paths, shapes, dtypes in params and batch_stats); otherwise it takes the fresh
initialisation whole. So new cells are fresh throughout, and a carried cell's `pre0` is fresh
when its first input changed kind (e.g. the second reduction cell of a 3-cell net reads the first
reduction cell through FactorizedReduce; at 5 cells it reads a normal cell through ReLUConvBN).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from typing import Any

import ml_collections
from flax import traverse_util

from prdarts_jax.models.backbone import reduction_indices

log = logging.getLogger("prdarts_jax")

COLLECTIONS = ("params", "batch_stats")
Unit = tuple[str, ...]
"""A sub-module's path: ("stem",), ("classifier",), ("cell_3", "pre0"),
("cell_3", "edge_5", "<op string>")."""


def cells_in_cycle(config: ml_collections.ConfigDict, cycle: int) -> int:
    """The supernet's depth in `cycle` (from 1). A position past the last cycle (the finished
    search's checkpoint) holds the last cycle's state, so it has the last cycle's depth."""
    cells = tuple(config.schedule.cells)
    if not cells:
        return int(config.layers)
    return int(cells[min(cycle, len(cells)) - 1])


def cell_groups(layers: int) -> tuple[tuple[int, ...], ...]:
    """The cell indices of stage 0, the first reduction, stage 1, the second reduction, stage 2."""
    r1, r2 = reduction_indices(layers)
    return (tuple(range(r1)), (r1,), tuple(range(r1 + 1, r2)), (r2,),
            tuple(range(r2 + 1, layers)))


def cell_map(old_layers: int, new_layers: int) -> dict[int, int]:
    """{new cell index: old cell index} for the cells that survive from `old_layers` to
    `new_layers` cells (every old cell, as new_layers >= old_layers); the others are new."""
    if new_layers < old_layers:
        raise ValueError(f"the supernet cannot shrink from {old_layers} to {new_layers} cells")
    out = {}
    for old, new in zip(cell_groups(old_layers), cell_groups(new_layers)):
        out.update(zip(new, old))
    return out


@dataclasses.dataclass(frozen=True)
class DeepenReport:
    """What a depth change did: `carried` {new cell: old cell}, the `new` cells, and the
    sub-modules of carried cells (or stem/classifier) that got fresh weights."""

    old_layers: int
    new_layers: int
    carried: Mapping[int, int]
    new: tuple[int, ...]
    fresh: tuple[str, ...]

    def line(self) -> str:
        moved = [f"{j}->{i}" for i, j in sorted(self.carried.items()) if i != j]
        return (f"deepening {self.old_layers} -> {self.new_layers} cells: carried cells "
                f"{sorted(self.carried)} (moved {', '.join(moved) or 'none'}), new cells "
                f"{list(self.new)}, fresh sub-modules of carried cells "
                f"{', '.join(self.fresh) or 'none'}")


def _unit(path: tuple[str, ...]) -> Unit:
    if path[0].startswith("cell_"):
        return path[:3] if path[1].startswith("edge_") else path[:2]
    return path[:1]


def _by_unit(variables: Mapping[str, Any]) -> dict[Unit, dict[tuple, Any]]:
    """{unit: {(collection, path inside the unit): leaf}}."""
    out: dict[Unit, dict[tuple, Any]] = {}
    for coll in COLLECTIONS:
        for path, leaf in traverse_util.flatten_dict(dict(variables.get(coll, {}))).items():
            unit = _unit(path)
            out.setdefault(unit, {})[(coll, path[len(unit):])] = leaf
    return out


def _signature(leaves: Mapping[tuple, Any]) -> dict:
    return {k: (tuple(v.shape), str(v.dtype)) for k, v in leaves.items()}


def deepen_variables(variables: Mapping[str, Any], fresh: Mapping[str, Any], old_layers: int,
                     new_layers: int) -> tuple[dict[str, Any], DeepenReport]:
    """The variables of the `new_layers`-cell supernet: `fresh` (its own initialisation) with
    every sub-module that survives from `variables` (an `old_layers`-cell supernet's) carried
    over unchanged (the same arrays), as the module docstring describes."""
    mapping = cell_map(old_layers, new_layers)
    old_units = _by_unit(variables)
    flat: dict[str, dict[tuple, Any]] = {coll: {} for coll in COLLECTIONS}
    fresh_units = []
    for unit, leaves in _by_unit(fresh).items():
        src = unit
        if unit[0].startswith("cell_"):
            i = int(unit[0][len("cell_"):])
            if i not in mapping:
                src = None
            else:
                src = (f"cell_{mapping[i]}", *unit[1:])
        old = old_units.get(src) if src is not None else None
        keep = old is not None and _signature(old) == _signature(leaves)
        if src is not None and not keep:
            fresh_units.append("/".join(unit))
        for (coll, sub), leaf in (old if keep else leaves).items():
            flat[coll][unit + sub] = leaf
    out = {coll: traverse_util.unflatten_dict(flat[coll]) for coll in COLLECTIONS}
    new_cells = tuple(i for i in range(new_layers) if i not in mapping)
    return out, DeepenReport(old_layers, new_layers, mapping, new_cells, tuple(fresh_units))


def carry_into_depth(variables: dict[str, Any], old_layers: int, new_layers: int,
                     fresh_init: Callable[[], Mapping[str, Any]]) -> dict[str, Any]:
    """At a cycle boundary: `variables` unchanged when the depth stays (nothing is initialised,
    so the search is today's), else carried into `fresh_init()` with one log line."""
    if new_layers == old_layers:
        return variables
    out, report = deepen_variables(variables, fresh_init(), old_layers, new_layers)
    log.info("%s", report.line())
    return out
