"""What each (variant, seed) of an ablation produced, read back from its two workdirs.

Reads only files (config.json, metrics.jsonl, genotype.json, results.json), so it reads a
running or a half-finished ablation too; a number that does not exist yet is None.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

from prdarts_jax.ablation.size import network_size
from prdarts_jax.analysis.search_run import load_run
from prdarts_jax.analysis.summary import summary
from prdarts_jax.grid.jobs import Job
from prdarts_jax.space.genotypes import Genotype


@dataclasses.dataclass(frozen=True)
class SeedResult:
    """One search and its retraining. `search_seconds`/`compile_share`: the whole search (its
    `finished` record); `val_acc`: the last epoch's α-half validation accuracy; `test_acc`:
    1 − results.json's mean test error over the retraining's last `final_epochs` epochs;
    `params`/`madds`: the retrained network's, as its results.json records them (counted by
    `ablation.size` for an older results.json without `madds`); `distinct_ops`: different
    ops in the genotype (normal and reduction cell together). An unfinished search
    (`searched` False) has its numbers so far; the table leaves it out."""

    seed: int
    searched: bool = False
    retrained: bool = False
    search_seconds: float | None = None
    compile_share: float | None = None
    val_acc: float | None = None
    distinct_ops: int | None = None
    test_acc: float | None = None
    params: int | None = None
    madds: int | None = None
    genotype: str | None = None


def distinct_ops(genotype: Genotype) -> int:
    return len({str(op) for op, _ in (*genotype.normal, *genotype.reduce)})


def _json(path: str) -> Any:
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def _search_part(workdir: str) -> dict[str, Any]:
    if not os.path.isfile(os.path.join(workdir, "metrics.jsonl")):
        return {}
    run = load_run(workdir)
    s = summary(run, count_params=None, count_madds=None)
    out = {"searched": run.finished, "search_seconds": s["search_seconds"] or None,
           "compile_share": s["compile_share"], "val_acc": s["val_acc"]}
    if run.genotype is not None:
        out.update(distinct_ops=distinct_ops(run.genotype),
                   genotype=run.genotype.describe())
    return out


def _train_part(workdir: str) -> dict[str, Any]:
    results = _json(os.path.join(workdir, "results.json"))
    config = _json(os.path.join(workdir, "config.json"))
    if not isinstance(results, dict) or not isinstance(config, dict):
        return {}
    error = results.get("mean_test_error_last_epochs")
    params, madds = results.get("params"), results.get("madds")
    if params is None or madds is None:   # results.json of a retraining before `madds`
        cells = Genotype.from_json(results["genotype_cells"])
        params, madds = network_size(cells, config["dataset"], config["channels"],
                                     config["layers"], params=params)
    return {"retrained": True, "test_acc": None if error is None else 1.0 - error,
            "params": params, "madds": madds}


def read_seed(seed: int, search: Job, train: Job | None) -> SeedResult:
    """The result of one seed from the workdirs of its jobs (missing parts: None)."""
    fields = _search_part(search.workdir)
    if train is not None and fields.get("searched"):
        fields.update(_train_part(train.workdir))
    return SeedResult(seed, **fields)
