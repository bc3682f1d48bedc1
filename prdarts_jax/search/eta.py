"""How long the rest of a search will take, estimated from its schedule and the epochs so far.

An epoch's cost is taken as proportional to the ops per edge it trains (the supernet runs every
candidate op) and to the supernet's cells (`schedule.cells`, progressive deepening), and doubles
once the α steps start after the grace epochs (an α step is a second forward-backward pass). The measured seconds per unit of that cost (compile time taken out,
median of the last three epochs) price the remaining epochs; each cycle still to come adds the
largest compile time of a cycle so far (a new pool structure compiles anew, and pools of
morphed convs compile longer than the first cycle's).
"""

from __future__ import annotations

import statistics
from typing import Mapping, Sequence

from prdarts_jax.search.pools import n_survivors
from prdarts_jax.space.opspec import INITIAL_POOL


def ops_per_edge(schedule: Mapping, cycle: int) -> int:
    """Ops per edge the schedule plans for `cycle` (1-based): the initial pool, then at each
    cycle's end `keep - morphs` survivors (`search.pools.n_survivors`) plus `morphs` children."""
    ops = len(INITIAL_POOL)
    for c in range(cycle - 1):
        keep, morphs = schedule["keep"][c], schedule["morphs"][c]
        ops = n_survivors(ops, keep, morphs) + morphs
    return ops


def epoch_units(schedule: Mapping, cycle: int, epoch: int) -> float:
    """The relative cost of `epoch` of `cycle`."""
    cells = tuple(schedule.get("cells", ()) or ())
    depth = cells[cycle - 1] if cells else 1
    return (ops_per_edge(schedule, cycle) * depth
            * (1 if epoch < schedule["grace"][cycle - 1] else 2))


def _seconds_per_unit(schedule: Mapping, records: Sequence[Mapping]) -> float | None:
    rates = [max(r["seconds"] - r.get("compile_seconds", 0.0), 0.0)
             / epoch_units(schedule, r["cycle"], r["epoch"]) for r in records[-3:]]
    return statistics.median(rates) if rates else None


def _compile_per_cycle(records: Sequence[Mapping]) -> float:
    per_cycle: dict[int, float] = {}
    for r in records:
        per_cycle[r["cycle"]] = per_cycle.get(r["cycle"], 0.0) + r.get("compile_seconds", 0.0)
    return max(per_cycle.values())


def remaining(schedule: Mapping, records: Sequence[Mapping]) -> tuple[float, float] | None:
    """(seconds left in the current cycle, seconds left in the search) after the last of the
    epoch `records` (cycle, epoch, seconds, compile_seconds), or None before the first."""
    if not records:
        return None
    unit = _seconds_per_unit(schedule, records)
    cycle, epoch = records[-1]["cycle"], records[-1]["epoch"]
    epochs = schedule["epochs"]
    this_cycle = sum(unit * epoch_units(schedule, cycle, e)
                     for e in range(epoch + 1, epochs[cycle - 1]))
    compile_s = _compile_per_cycle(records)
    later = sum(compile_s + sum(unit * epoch_units(schedule, c, e) for e in range(epochs[c - 1]))
                for c in range(cycle + 1, len(epochs) + 1))
    return this_cycle, this_cycle + later
