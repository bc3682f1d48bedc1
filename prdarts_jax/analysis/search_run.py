"""A search workdir read back: its config, epoch and cycle records, statistics and genotype.

`load_run` reads only files in the workdir (`metrics.jsonl`, `config.json`, `genotype.json`), so
a running or stopped search reads too; `SearchRun.provisional_genotype` then gives the cells the
α of its last finished cycle would choose.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Mapping, Sequence

from prdarts_jax.runtime import workdirs
from prdarts_jax.runtime.metrics import read_metrics
from prdarts_jax.search.pools import CellPools, PoolReport
from prdarts_jax.search.statistics import SETTING_KEYS, history_statistics, pool_history
from prdarts_jax.space.genotypes import Genotype, derive_genotype, load_genotype
from prdarts_jax.space.spaces import CELL_TYPES


@dataclasses.dataclass(frozen=True)
class SearchRun:
    """What a search workdir holds, read back and ordered.

    `epochs`: epoch records sorted by (cycle, epoch), the last record of each pair winning (a
    resumed run may repeat epochs); `cycles`: the cycle records by cycle; `stats`: cycle
    statistics by cycle, as logged (`cycle_stats` records) or else recomputed from the cycle
    records; `schedule`: per cycle epochs, grace, keep, morphs from config.json, or what the
    records show; `totals`: the `finished` record (wall and compile seconds over all the
    search's processes), None for an unfinished search or one from before that record."""

    workdir: str
    config: dict[str, Any]
    epochs: list[dict[str, Any]]
    cycles: dict[int, dict[str, Any]]
    stats: dict[int, dict[str, Any]]
    logged_stats: frozenset[int]
    schedule: dict[int, dict[str, Any]]
    pools: dict[int, CellPools]
    reports: dict[int, PoolReport]
    genotype: Genotype | None
    totals: dict[str, Any] | None = None

    @property
    def finished(self) -> bool:
        return self.genotype is not None

    def provisional_genotype(self) -> tuple[Genotype, int] | None:
        """The strongest op per edge and the two strongest edges per node after the last
        finished cycle, with that cycle; None before the first cycle ends."""
        if not self.reports:
            return None
        c = max(self.reports)
        r = self.reports[c]
        return derive_genotype({t: [e.ops for e in r[t]] for t in CELL_TYPES},
                               {t: [e.alpha for e in r[t]] for t in CELL_TYPES},
                               rule=self.config.get("genotype_edge_score", "max_weight"),
                               max_skips=self.config.get("genotype_max_skips")), c


def _schedule(config: Mapping, epochs: Sequence[Mapping],
              cycles: Mapping[int, Mapping]) -> dict[int, dict[str, Any]]:
    lists = config.get("schedule") or {}
    out: dict[int, dict[str, Any]] = {}
    if all(isinstance(lists.get(k), list) for k in SETTING_KEYS):
        for n, values in enumerate(zip(*(lists[k] for k in SETTING_KEYS))):
            out[n + 1] = dict(zip(SETTING_KEYS, values))
    for c in sorted({r["cycle"] for r in epochs} | set(cycles)):
        if c in out:
            continue
        mine = [r for r in epochs if r["cycle"] == c]
        report = cycles.get(c, {}).get("report", {})
        out[c] = {"epochs": len(mine) if c in cycles else None,
                  "grace": sum(bool(r.get("grace")) for r in mine) if c in cycles else None,
                  "keep": report.get("keep"), "morphs": report.get("morphs")}
    return out


def load_run(workdir: str) -> SearchRun:
    """Reads a search workdir; ValueError (one line) if it holds no metrics.jsonl."""
    path = os.path.join(workdir, "metrics.jsonl")
    found = workdirs.kind(workdir)
    if found == workdirs.TRAIN:
        raise ValueError(f"{workdir!r} holds a retraining, not a search; the report is of a "
                         "search workdir (its results are in results.json)")
    if not os.path.isfile(path):
        raise ValueError(f"{path} not found: {workdir!r} is not a search workdir; run "
                         f"`python -m prdarts_jax.search --config configs/quick.py --workdir "
                         f"{workdir}` first")
    epochs: dict[tuple[int, int], dict] = {}
    cycles: dict[int, dict] = {}
    logged: dict[int, dict] = {}
    totals = None
    for record in read_metrics(path):
        kind = record.get("type")
        if kind == "finished":
            totals = record
        elif kind == "epoch":
            epochs[(record["cycle"], record["epoch"])] = record
        elif kind == "cycle":
            cycles[record["cycle"]] = record
        elif kind == "cycle_stats":
            logged[record["cycle"]] = {k: v for k, v in record.items()
                                       if k not in ("type", "cycle")}
    config: dict[str, Any] = {}
    if os.path.isfile(os.path.join(workdir, "config.json")):
        with open(os.path.join(workdir, "config.json")) as f:
            config = json.load(f)
    epoch_list = [epochs[k] for k in sorted(epochs)]
    schedule = _schedule(config, epoch_list, cycles)
    stats = {**history_statistics(cycles, schedule), **logged}
    pools, reports = pool_history(cycles)
    genotype_path = os.path.join(workdir, "genotype.json")
    genotype = load_genotype(genotype_path) if os.path.isfile(genotype_path) else None
    return SearchRun(workdir, config, epoch_list, cycles, stats, frozenset(logged), schedule,
                     pools, reports, genotype, totals)
