"""The collected runs as the paper's Table 3: rows of architectures, test errors over seeds,
parameters, search cost and search space; as Markdown or CSV.

MAdds: multiply-adds of the same network at batch 1 in inference (`models.cost`), in G.

Rows: one per search (its retrainings' mean ± sample std over seeds), one per search space with
two or more searches (mean ± std of the searches' means: the spread over search seeds), one per
published cell retrained, and one per other genotype retrained.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
from typing import Iterable, Sequence

from prdarts_jax.analysis.workdir_scan import Collection, SearchRun, TrainRun, search_of
from prdarts_jax.space.genotypes import PUBLISHED

DATASET_LABEL = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100"}
SPACE_ORDER = ("DL", "DR", "UR", "DARTS")
PUBLISHED_SPACE = {"DL1": "DL", "DL2": "DL", "DR": "DR", "UR": "UR"}
HOURS_PER_UNIT = {"hours": 1.0, "days": 24.0}

PAPER_TABLE3 = (
    # name, space, params (M), {dataset: (error %, std)}, search GPU-days
    ("DL1", "DL", 3.2, {"cifar10": (2.74, 0.12), "cifar100": (17.37, 0.14)}, 0.82),
    ("DL2", "DL", 4.0, {"cifar10": (2.51, 0.09), "cifar100": (15.53, 0.29)}, 0.82),
    ("DR", "DR", 4.2, {"cifar10": (2.55, 0.19), "cifar100": (16.69, 0.08)}, 0.88),
    ("UR", "UR", 5.4, {"cifar10": (3.79, 0.24)}, 1.10),
)
"""The paper's Table 3 rows for PR-DARTS (three retraining seeds each), for comparison."""


@dataclasses.dataclass(frozen=True)
class Stat:
    """Mean, sample standard deviation (None for one value) and count."""

    mean: float
    std: float | None
    n: int

    @staticmethod
    def of(values: Sequence[float]) -> Stat | None:
        if not values:
            return None
        mean = sum(values) / len(values)
        std = (math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
               if len(values) > 1 else None)
        return Stat(mean, std, len(values))


@dataclasses.dataclass(frozen=True)
class Row:
    """One line of the table: errors in %, params in millions, MAdds in G, cost in hours."""

    label: str
    kind: str                     # search | searches | published | other | paper
    space: str
    seed: int | None
    errors: dict[str, Stat]
    params: Stat | None
    cost: Stat | None
    madds: Stat | None = None


@dataclasses.dataclass(frozen=True)
class Table:
    rows: list[Row]
    datasets: list[str]           # the error columns, in order
    params_dataset: str | None    # the dataset whose network the params are of
    devices_recorded: bool        # every search recorded its device count


def _dataset_order(names: Iterable[str]) -> list[str]:
    names = set(names)
    return ([d for d in DATASET_LABEL if d in names]
            + sorted(names - set(DATASET_LABEL)))


def _errors(runs: Sequence[TrainRun]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for run in runs:
        out.setdefault(run.dataset, []).append(100 * run.error)
    return out


def _params(runs: Sequence[TrainRun], dataset: str | None) -> list[float]:
    """The distinct counts (one network has one): a spread would show a mix-up."""
    return sorted({run.params / 1e6 for run in runs if run.dataset == dataset})


def _madds(runs: Sequence[TrainRun], dataset: str | None) -> list[float]:
    """The distinct MAdds counts in G, as `_params` (runs without one are left out)."""
    return sorted({run.madds / 1e9 for run in runs
                   if run.dataset == dataset and run.madds is not None})


def _row(label: str, kind: str, space: str, seed: int | None, runs: Sequence[TrainRun],
         params_dataset: str | None, cost: Sequence[float]) -> Row:
    return Row(label, kind, space, seed, {d: Stat.of(v) for d, v in _errors(runs).items()},
               Stat.of(_params(runs, params_dataset)), Stat.of(cost),
               Stat.of(_madds(runs, params_dataset)))


def _summary(space: str, rows: Sequence[Row], searches: int) -> Row:
    datasets = {d for r in rows for d in r.errors}
    errors = {}
    for d in datasets:
        stat = Stat.of([r.errors[d].mean for r in rows if d in r.errors])
        errors[d] = dataclasses.replace(stat, n=sum(r.errors[d].n for r in rows
                                                    if d in r.errors))
    return Row(f"PR-DARTS {space}: mean of {searches} searches", "searches", space, None, errors,
               Stat.of([r.params.mean for r in rows if r.params]),
               Stat.of([r.cost.mean for r in rows if r.cost]),
               Stat.of([r.madds.mean for r in rows if r.madds]))


def _space_key(space: str) -> tuple:
    return (SPACE_ORDER.index(space) if space in SPACE_ORDER else len(SPACE_ORDER), space)


def build_table(collection: Collection, with_paper: bool = False) -> Table:
    """Groups the retrainings by the search (or published cell) they trained. Parameter counts
    are those of the first dataset's network (CIFAR-10 when there are runs on it, and always
    `with_paper`, whose rows are CIFAR-10's)."""
    datasets = _dataset_order(t.dataset for t in collection.trainings)
    # the paper lists CIFAR-10 parameter counts; without its rows, the first dataset's
    params_dataset = "cifar10" if with_paper else (datasets[0] if datasets else None)
    by_search: dict[SearchRun, list[TrainRun]] = {s: [] for s in collection.searches}
    by_genotype: dict[str, list[TrainRun]] = {}
    for run in collection.trainings:
        search = search_of(run, collection.searches)
        if search is not None:
            by_search[search].append(run)
        else:
            by_genotype.setdefault(run.genotype, []).append(run)

    rows: list[Row] = []
    for space in sorted({s.space for s in collection.searches}, key=_space_key):
        searches = sorted((s for s in collection.searches if s.space == space),
                          key=lambda s: (s.seed, s.workdir))
        mine = []
        for s in searches:
            where = "" if s.dataset == "cifar10" else f", on {s.dataset}"
            mine.append(_row(f"PR-DARTS {space} (search seed {s.seed}{where})", "search", space,
                             s.seed, by_search[s], params_dataset, [s.device_hours]))
        rows += mine
        if len(searches) > 1:
            rows.append(_summary(space, mine, len(searches)))
    others = []
    for genotype, runs in by_genotype.items():
        name = genotype.upper()
        if name in PUBLISHED:
            others.append(_row(f"{name} (published cell)", "published",
                               PUBLISHED_SPACE.get(name, "DARTS"), None, runs, params_dataset,
                               []))
        else:
            others.append(_row(genotype, "other", "?", None, runs, params_dataset, []))
    rows += sorted(others, key=lambda r: (r.kind != "published", _space_key(r.space), r.label))
    if with_paper:
        for name, space, params, errors, days in PAPER_TABLE3:
            rows.append(Row(f"paper: PR-DARTS {name}", "paper", space, None,
                            {d: Stat(m, s, 3) for d, (m, s) in errors.items()},
                            Stat(params, None, 1), Stat(days * 24, None, 1)))
        datasets = _dataset_order([*datasets, "cifar10", "cifar100"])
    devices = all(s.devices is not None for s in collection.searches)
    return Table(rows, datasets, params_dataset, devices)


def _num(x: float) -> str:
    return f"{x:.3g}" if abs(x) < 100 else f"{x:.0f}"


def _params_num(x: float) -> str:
    return f"{x:.2f}" if x >= 0.1 else f"{x:.3g}"


def _stat(stat: Stat | None, fmt=_num, count: bool = False) -> str:
    if stat is None:
        return "—"
    text = fmt(stat.mean) + (f" ± {fmt(stat.std)}" if stat.std is not None else "")
    return text + (f" ({stat.n})" if count else "")


def _scaled(stat: Stat | None, unit: str) -> Stat | None:
    if stat is None:
        return None
    k = HOURS_PER_UNIT[unit]
    return Stat(stat.mean / k, None if stat.std is None else stat.std / k, stat.n)


def cost_header(table: Table, unit: str) -> str:
    short = {"hours": "h", "days": "days"}[unit]
    if table.devices_recorded:
        return f"search cost (GPU-{short})"
    return f"search cost ({short} × 1 device: device count not recorded)"


def to_markdown(table: Table, unit: str = "hours") -> str:
    """The table in the paper's Table 3 column order, with footnotes."""
    params_of = DATASET_LABEL.get(table.params_dataset or "", table.params_dataset or "—")
    head = (["architecture"]
            + [f"{DATASET_LABEL.get(d, d)} test error (%)" for d in table.datasets]
            + [f"params (M, {params_of})", f"MAdds (G, {params_of})", cost_header(table, unit),
               "search space"])
    lines = ["| " + " | ".join(head) + " |",
             "|---|" + "---:|" * (len(table.datasets) + 3) + "---|"]
    for row in table.rows:
        cells = ([row.label]
                 + [_stat(row.errors.get(d), lambda x: f"{x:.2f}", True) for d in table.datasets]
                 + [_stat(row.params, _params_num), _stat(row.madds, _params_num),
                    _stat(_scaled(row.cost, unit)), row.space])
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "Test error: results.json's mean test error over the last epochs, as mean ± sample std "
        "over the retraining seeds, (n) = retraining runs; a `mean of N searches` row gives mean "
        "± std of the searches' means. MAdds: multiply-adds of the network at batch 1 in "
        "inference (convs and the linear layer). Search cost: the search's summed epoch `seconds` "
        "(metrics.jsonl)" + (" × its devices." if table.devices_recorded else
                             "; the device count was not recorded, so 1 is assumed.")]
    return "\n".join(lines) + "\n"


def to_csv(table: Table, unit: str = "hours") -> str:
    """One line per row with plain numbers (empty where there is none). The cost column is
    `search_device_<unit>`, or `search_wall_<unit>` (× 1 device) where devices went unrecorded."""
    def num(x: float | None) -> str:
        return "" if x is None else f"{x:.6g}"

    head = ["architecture", "kind", "search_space", "search_seed"]
    for d in table.datasets:
        head += [f"{d}_test_error_pct", f"{d}_test_error_std", f"{d}_runs"]
    cost = f"search_{'device' if table.devices_recorded else 'wall'}_{unit}"
    head += ["params_m", "params_m_std", "madds_g", "madds_g_std", cost, f"{cost}_std"]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(head)
    for row in table.rows:
        line = [row.label, row.kind, row.space, "" if row.seed is None else row.seed]
        for d in table.datasets:
            s = row.errors.get(d)
            line += [num(s and s.mean), num(s and s.std), s.n if s else ""]
        cost = _scaled(row.cost, unit)
        line += [num(row.params and row.params.mean), num(row.params and row.params.std),
                 num(row.madds and row.madds.mean), num(row.madds and row.madds.std),
                 num(cost and cost.mean), num(cost and cost.std)]
        writer.writerow(line)
    return buf.getvalue()
