"""The report's opening summary as plain data: what the search found and what it cost.

`summary(run)` gathers the numbers a reader wants first — the final validation accuracy, the
size of the network the genotype makes (parameters and multiply-adds), the search's wall time and how much of it was
compiling, the config in one line and the command that retrains the genotype — into one
JSON-serialisable dict, so the HTML page and the tests read the same values.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Mapping, Sequence

from prdarts_jax.analysis.search_run import SearchRun
from prdarts_jax.runtime.workdirs import retrain_command
from prdarts_jax.space.genotypes import Genotype

FINAL_NETWORK = {"dataset": "cifar10", "num_classes": 10, "channels": 36, "layers": 20,
                 "image_shape": (32, 32, 3)}
"""The network a genotype is retrained as (SPEC §6, configs/train_cifar10.py)."""


@functools.lru_cache(maxsize=32)
def final_network_params(genotype: Genotype) -> int:
    """Parameters of the final network (C=36, 20 cells, CIFAR-10 32×32, without the auxiliary
    head), as `python -m prdarts_jax.train --count_params` counts them: from shapes only
    (`jax.eval_shape`, no compile). It imports JAX, so it is imported here only when called."""
    from prdarts_jax.models.network import param_count

    f = FINAL_NETWORK
    return param_count(genotype, f["num_classes"], f["channels"], f["layers"], f["image_shape"])


def final_network_madds(genotype: Genotype) -> int:
    """Multiply-adds of the same network at batch 1 in inference (DARTS' convention: convs and
    the linear layer; `models.cost`), as `--count_params` prints them. Analytic, instant."""
    from prdarts_jax.models.cost import network_cost

    f = FINAL_NETWORK
    return network_cost(genotype, f["num_classes"], f["channels"], f["layers"],
                        f["image_shape"]).madds


def _timing(epochs: Sequence[Mapping], totals: Mapping | None = None) -> dict[str, Any]:
    """Wall time and compile share: from the `finished` record when there is one (the whole
    search, boundaries and all), else Σ seconds of the epoch records and Σ compile_seconds /
    Σ seconds over the records that log compile_seconds (None where none does)."""
    if totals and totals.get("seconds"):
        return {"search_seconds": float(totals["seconds"]),
                "compile_seconds": float(totals["compile_seconds"]),
                "compile_share": totals["compile_seconds"] / totals["seconds"]}
    seconds = float(sum(r.get("seconds") or 0.0 for r in epochs))
    timed = [r for r in epochs if r.get("compile_seconds") is not None]
    compiling = float(sum(r["compile_seconds"] for r in timed)) if timed else None
    timed_seconds = sum(r.get("seconds") or 0.0 for r in timed)
    share = compiling / timed_seconds if timed and timed_seconds > 0 else None
    return {"search_seconds": seconds, "compile_seconds": compiling, "compile_share": share}


def _schedule_text(schedule: Mapping[int, Mapping]) -> str:
    """`4 cycles: epochs 3,3,2,2; grace 1,1,0,0; morphs 2,2,0,0; keep 4,4,2,1`."""
    cycles = sorted(schedule)
    parts = []
    for key in ("epochs", "grace", "morphs", "keep"):
        values = ["?" if schedule[c].get(key) is None else str(schedule[c][key]) for c in cycles]
        parts.append(f"{key} {','.join(values)}")
    return f"{len(cycles)} cycles: {'; '.join(parts)}"


def _layers(cfg: Mapping) -> int | str | None:
    """The supernet's depth: `layers`, or `3→4` under progressive deepening (schedule.cells)."""
    cells = (cfg.get("schedule") or {}).get("cells")
    if cells and len(set(cells)) > 1:
        return "→".join(str(c) for c in dict.fromkeys(cells))
    return cells[0] if cells else cfg.get("layers")


def _config(run: SearchRun) -> dict[str, Any]:
    cfg = run.config
    return {"dataset": cfg.get("dataset"), "space": cfg.get("space"), "C": cfg.get("channels"),
            "layers": _layers(cfg), "seed": cfg.get("seed"),
            "batch_size": cfg.get("batch_size"), "schedule": _schedule_text(run.schedule)}


def _genotype(run: SearchRun) -> tuple[Genotype | None, str | None]:
    """The genotype the summary shows and where it comes from."""
    if run.genotype is not None:
        return run.genotype, "genotype.json"
    provisional = run.provisional_genotype()
    if provisional is None:
        return None, None
    return provisional[0], f"provisional genotype after cycle {provisional[1]}"


def summary(run: SearchRun,
            count_params: Callable[[Genotype], int] | None = final_network_params,
            count_madds: Callable[[Genotype], int] | None = final_network_madds
            ) -> dict[str, Any]:
    """The summary of `run` as a JSON-serialisable dict (see the keys below); `count_params`
    and `count_madds` size the final network of the genotype (None: leave `params` or
    `madds` None)."""
    genotype, source = _genotype(run)
    last = run.epochs[-1] if run.epochs else {}
    planned = len((run.config.get("schedule") or {}).get("epochs") or []) or None
    out: dict[str, Any] = {
        "workdir": run.workdir, "finished": run.finished,
        "genotype": genotype.describe() if genotype else None, "genotype_source": source,
        "val_acc": last.get("val_acc"), "val_acc_at": [last.get("cycle"), last.get("epoch")],
        "params": count_params(genotype) if genotype and count_params else None,
        "madds": count_madds(genotype) if genotype and count_madds else None,
        "final_network": {k: list(v) if isinstance(v, tuple) else v
                          for k, v in FINAL_NETWORK.items()},
        "epochs": len(run.epochs), "cycles_done": len(run.cycles), "cycles_planned": planned,
        **_timing(run.epochs, run.totals), "config": _config(run),
        "retrain_command": retrain_command(run.workdir),
    }
    if not run.finished:
        out["retrain_note"] = (
            "The search has not finished: the genotype is provisional and there is no "
            "genotype.json yet. Once the search has finished, retrain it with:"
            if genotype else "No genotype yet: no cycle has finished. Once the search has "
            "finished, retrain its genotype with:")
    return out


def format_duration(seconds: float) -> str:
    """`42 s`, `6 min 2 s`, `3 h 05 min`."""
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"
