"""The ablation's outputs from its workdirs: the table (printed, and `ablation.md`), the
per-seed numbers and the rows (`ablation.json`) and the figure (`ablation.png`), all in the
ablation's root. Written after every run, finished or not, so a partial ablation shows what it
has."""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Callable, Sequence

from prdarts_jax.ablation.figure import draw
from prdarts_jax.ablation.plan import jobs_of
from prdarts_jax.ablation.results import SeedResult, read_seed
from prdarts_jax.ablation.table import aggregate, markdown
from prdarts_jax.ablation.variants import Variant
from prdarts_jax.grid.jobs import SEARCH, TRAIN, Job

TABLE, DATA, FIGURE = "ablation.md", "ablation.json", "ablation.png"


def collect(jobs: Sequence[Job], variants: Sequence[Variant],
            seeds: Sequence[int]) -> dict[str, list[SeedResult]]:
    """{variant name: its seeds' results, in seed order}."""
    out = {}
    for variant in variants:
        mine = jobs_of(jobs, variant)
        trains = {job.after.name: job for job in mine[TRAIN] if job.after is not None}
        out[variant.name] = [read_seed(seed, search, trains.get(search.name))
                             for seed, search in zip(seeds, mine[SEARCH])]
    return out


def write_report(root: str, jobs: Sequence[Job], variants: Sequence[Variant],
                 seeds: Sequence[int], out: Callable[[str], None] = print) -> str:
    """Prints the table and writes the three files into `root`; returns the table."""
    results = collect(jobs, variants, seeds)
    rows = [aggregate(name, rs) for name, rs in results.items()]
    table = markdown(rows)
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, TABLE), "w") as f:
        f.write(table + "\n")
    data = {"rows": rows,
            "variants": {v.name: {"dir": v.slug, "overrides": dict(v.overrides)}
                         for v in variants},
            "seeds": {name: [dataclasses.asdict(r) for r in rs]
                      for name, rs in results.items()}}
    with open(os.path.join(root, DATA), "w") as f:
        json.dump(data, f, indent=1)
    figure = os.path.join(root, FIGURE)
    drawn = draw(results, figure)
    out(table)
    out(f"# wrote {os.path.join(root, TABLE)}, {os.path.join(root, DATA)}"
        + (f", {figure}" if drawn else " (no figure: no retraining has finished)"))
    return table
