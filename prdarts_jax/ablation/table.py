"""The ablation's table: one row per variant, its seeds aggregated (mean, and ± the sample
standard deviation where two or more seeds have the number).

Columns: variant, seeds (those retrained, `of` those planned while some are missing), search
wall time and its compile share, α-half validation accuracy (the search's last epoch),
retrained test accuracy, params and MAdds of the retrained network, distinct ops in the
genotype. Every number comes from finished searches only (an unfinished search's wall time and
accuracy are partial); such a seed shows as missing in the seeds column.
"""

from __future__ import annotations

import math
import statistics
from typing import Any, Mapping, Sequence

from prdarts_jax.ablation.results import SeedResult
from prdarts_jax.analysis.summary import format_duration

COLUMNS = ("variant", "seeds", "search wall", "compile", "α-half val acc",
           "test acc (retrained)", "params", "MAdds", "distinct ops")


def mean_std(values: Sequence[float | None]) -> tuple[float | None, float | None, int]:
    """(mean, sample std or None, n) over the values that exist."""
    have = [float(v) for v in values if v is not None]
    if not have:
        return None, None, 0
    return (statistics.fmean(have), statistics.stdev(have) if len(have) > 1 else None,
            len(have))


def aggregate(name: str, results: Sequence[SeedResult]) -> dict[str, Any]:
    """A variant's row as data: per number, {"mean", "std", "n"}; the seeds by state."""
    row: dict[str, Any] = {
        "variant": name, "seeds": [r.seed for r in results],
        "searched": [r.seed for r in results if r.searched],
        "retrained": [r.seed for r in results if r.retrained]}
    for key in ("search_seconds", "compile_share", "val_acc", "test_acc", "params", "madds",
                "distinct_ops"):   # only finished searches: a killed one's numbers are partial
        mean, std, n = mean_std([getattr(r, key) for r in results if r.searched])
        row[key] = {"mean": mean, "std": std, "n": n}
    return row


def _si(value: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value:.3g}"


def _cell(stat: Mapping[str, Any], kind: str) -> str:
    mean, std = stat["mean"], stat["std"]
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "—"
    show = {"acc": lambda v: f"{v:.4f}", "share": lambda v: f"{100 * v:.0f}%",
            "time": format_duration, "size": _si, "count": lambda v: f"{v:.1f}"}[kind]
    return show(mean) if std is None else f"{show(mean)} ± {show(std)}"


def _seeds(row: Mapping[str, Any]) -> str:
    done = ",".join(map(str, row["retrained"])) or "none"
    if len(row["retrained"]) == len(row["seeds"]):
        return done
    return f"{done} of {','.join(map(str, row['seeds']))}"


def markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    """The rows as a Markdown table with COLUMNS."""
    lines = ["| " + " | ".join(COLUMNS) + " |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        cells = [f"`{row['variant']}`", _seeds(row), _cell(row["search_seconds"], "time"),
                 _cell(row["compile_share"], "share"), _cell(row["val_acc"], "acc"),
                 _cell(row["test_acc"], "acc"), _cell(row["params"], "size"),
                 _cell(row["madds"], "size"), _cell(row["distinct_ops"], "count")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
