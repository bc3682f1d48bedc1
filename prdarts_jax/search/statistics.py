"""Search statistics of the candidate pools (SPEC §7, the paper's Figure 2).

Pure functions on host values. `cycle_statistics` summarises the pools one cycle trains with:
what kinds of ops they hold, how similar the ops of an edge are, and how strongly the parents of
the newest ops were weighted. `history_statistics` recomputes the same values from the records of
a metrics.jsonl, for workdirs written before the search logged them itself.

The similarity follows the paper: 0 for ops of different kinds, else (1 + matches)/(1 + params)
with a partial score for the expansion lists. A pool has two parameters, its type and k (always 3),
so that max vs. avg pool scores 2/3 and the initial pool [max, avg, skip, conv 3x3] exactly 1/3.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from prdarts_jax.search.pools import (
    CELL_TYPES,
    Birth,
    CellPools,
    EdgePool,
    EdgeReport,
    PoolReport,
    initial_pools,
    softmax,
)
from prdarts_jax.space.opspec import OpSpec

OP_KINDS = ("conv", "pool", "skip")
KERNEL_SIZES = (1, 3, 5, 7)
DILATIONS = (1, 2)
DEPTHS = (0, 1)
SETTING_KEYS = ("epochs", "grace", "keep", "morphs")


def _c_mul_score(a: Sequence[int], b: Sequence[int]) -> float:
    """Partial match of two expansion lists: 1 for equal lists, less the more they differ.

    With n = min(len) + 1 each position of the shorter list that holds the same value in both
    scores 1/n, and equal lengths score the remaining 1/n."""
    n = min(len(a), len(b)) + 1
    same_length = 1.0 / n if len(a) == len(b) else 0.0
    return same_length + sum(1.0 / n for x, y in zip(a, b) if x == y)


def similarity(a: OpSpec, b: OpSpec) -> float:
    """The similarity of two ops in [0, 1]; 1 exactly when they are equal."""
    if a.kind != b.kind:
        return 0.0
    if a.kind == "pool":
        scores = [float(a.pool_type == b.pool_type), float(a.k == b.k)]
    elif a.kind == "conv":
        scores = [float(a.k == b.k), float(a.dil == b.dil), _c_mul_score(a.c_mul, b.c_mul)]
    else:
        scores = []
    return (1.0 + sum(scores)) / (1.0 + len(scores))


def edge_similarity(ops: Sequence[OpSpec]) -> float:
    """The mean similarity over all ordered pairs of an edge's ops, the diagonal included."""
    if not ops:
        raise ValueError("edge_similarity needs at least one op")
    return float(np.mean([similarity(a, b) for a in ops for b in ops]))


def cell_similarity(edges: Iterable[Sequence[OpSpec]]) -> float:
    """The mean of `edge_similarity` over the edges of a cell type."""
    values = [edge_similarity(ops) for ops in edges]
    if not values:
        raise ValueError("cell_similarity needs at least one edge")
    return float(np.mean(values))


def _fractions(values: Sequence[int], always: Sequence[int]) -> dict[str, float]:
    """Fractions of each value, keyed by its string; `always` keys are present even at 0."""
    keys = sorted(set(always) | set(values))
    n = len(values)
    return {str(k): (sum(v == k for v in values) / n if n else 0.0) for k in keys}


def parent_probabilities(report: EdgeReport) -> list[float]:
    """For each birth on an edge, its parent's softmax(α) renormalised over the survivors."""
    alpha = dict(zip(report.ops, report.alpha))
    survivors = list(report.survivors)
    probs = softmax(np.array([alpha[s] for s in survivors])) if survivors else np.zeros(0)
    return [float(probs[survivors.index(b.parent)]) for b in report.added]


def _cell_statistics(edges: Sequence[EdgePool],
                     reports: Sequence[EdgeReport] | None) -> dict[str, Any]:
    ops = [op for edge in edges for op in edge.ops]
    convs = [op for op in ops if op.is_conv]
    out: dict[str, Any] = {
        "ops": len(ops),
        "ops_per_edge": [len(edge) for edge in edges],
        "distinct_ops": len(set(ops)),
        "op_types": {k: sum(op.kind == k for op in ops) / len(ops) for k in OP_KINDS},
        "kernel_sizes": _fractions([op.k for op in convs], KERNEL_SIZES),
        "dilations": _fractions([op.dil for op in convs], DILATIONS),
        "depths": _fractions([len(op.c_mul) for op in convs], DEPTHS),
        "similarity": cell_similarity(edge.ops for edge in edges),
        "parent_probability": None,
        "births": 0,
        "returned": 0,
        "failed_tries": 0,
    }
    if reports is not None:
        probs = [p for r in reports for p in parent_probabilities(r)]
        out["parent_probability"] = float(np.mean(probs)) if probs else None
        out["births"] = sum(len(r.added) for r in reports)
        out["returned"] = sum(b.returned for r in reports for b in r.added)
        out["failed_tries"] = sum(r.failed_tries for r in reports)
    return out


def cycle_statistics(pools: CellPools, report: PoolReport | None, *,
                     settings: Mapping[str, Any]) -> dict[str, Any]:
    """Statistics of the pools one cycle trains with; a JSON-serialisable dict.

    `report` is the prune/replace step that produced `pools` (None for the first cycle) and
    `settings` the cycle's schedule entries, copied in as they are. Keys:

    - `settings`: a copy of `settings` (the search passes epochs, grace, keep, morphs);
    - `normal`, `reduce`: per cell type
      - `ops` (int): ops over all edges; `ops_per_edge` (list of int, edge order);
      - `distinct_ops` (int): different ops in the cell, over all edges;
      - `op_types`: fraction of `ops` per kind, keys `conv`, `pool`, `skip`;
      - `kernel_sizes`, `dilations`, `depths` (depth = len(c_mul)): fractions of the conv ops,
        keyed by the value as a string; "1" "3" "5" "7", "1" "2" and "0" "1" are always
        present (0.0 when the cell has no conv), other values when they occur;
      - `similarity`: mean edge similarity (`cell_similarity`);
      - `parent_probability`: mean over the report's births of the parent's softmax(α)
        renormalised over the survivors; None without a report or births;
      - `births`, `returned`, `failed_tries` (int): the report's new ops, how many of them the
        edge had held before, and failed tries (0 without a report).
    """
    return {"settings": dict(settings),
            **{cell: _cell_statistics(pools[cell], None if report is None else report[cell])
               for cell in CELL_TYPES}}


def _edge_report_from_json(d: Mapping) -> EdgeReport:
    parse = OpSpec.parse
    return EdgeReport(
        ops=tuple(map(parse, d["ops"])), alpha=tuple(float(a) for a in d["alpha"]),
        dropped=tuple(map(parse, d["dropped"])), survivors=tuple(map(parse, d["survivors"])),
        added=tuple(Birth(parse(b["child"]), parse(b["parent"]), int(b["kind"]),
                          bool(b.get("returned", False)), b.get("kind_probability"))
                    for b in d["added"]),
        failed_tries=int(d.get("failed_tries", 0)))


def pool_report_from_json(d: Mapping) -> PoolReport:
    """Reads back `PoolReport.to_json()` (the `report` of a metrics.jsonl cycle record)."""
    try:
        return PoolReport(int(d["keep"]), int(d["morphs"]), bool(d["final"]),
                          **{c: tuple(map(_edge_report_from_json, d[c])) for c in CELL_TYPES})
    except (KeyError, TypeError) as err:
        raise ValueError(f"malformed pool report ({err!r})") from None


def pool_history(cycle_records: Mapping[int, Mapping],
                 first_pools: CellPools | None = None
                 ) -> tuple[dict[int, CellPools], dict[int, PoolReport]]:
    """The pools each cycle trains with, and the step that ended each cycle.

    `cycle_records[c]` is the `"type": "cycle"` record that ends cycle c. `pools[1]` is
    `first_pools` (the initial pools by default) and `pools[c + 1]` the pools of record c; after
    the final step that entry holds the final pools (one op per edge), which no cycle trains.
    """
    pools = {1: first_pools or initial_pools()}
    reports = {}
    for c, record in sorted(cycle_records.items()):
        reports[c] = pool_report_from_json(record["report"])
        pools[c + 1] = CellPools.from_json(record["pools"])
    return pools, reports


def history_statistics(cycle_records: Mapping[int, Mapping],
                       schedule: Mapping[int, Mapping[str, Any]],
                       first_pools: CellPools | None = None) -> dict[int, dict[str, Any]]:
    """`cycle_statistics` of every cycle whose pools the records determine (see
    `pool_history`); `schedule[c]` gives the settings of cycle c ({} where unknown)."""
    pools, reports = pool_history(cycle_records, first_pools)
    return {c: cycle_statistics(p, reports.get(c - 1), settings=schedule.get(c, {}))
            for c, p in sorted(pools.items())
            if c - 1 not in reports or not reports[c - 1].final}


__all__ = ["DEPTHS", "DILATIONS", "KERNEL_SIZES", "OP_KINDS", "SETTING_KEYS", "cell_similarity",
           "cycle_statistics", "edge_similarity", "history_statistics", "parent_probabilities",
           "pool_history", "pool_report_from_json", "similarity"]


def stats_record(cycle: int, pools: CellPools, report: PoolReport | None,
                 schedule: Mapping[str, Sequence[int]]) -> dict[str, Any]:
    """The metrics record of the pools cycle `cycle` trains with (written before it starts)."""
    settings = {k: schedule[k][cycle - 1] for k in ("epochs", "grace", "keep", "morphs")}
    return {"type": "cycle_stats", "cycle": cycle,
            **cycle_statistics(pools, report, settings=settings)}
