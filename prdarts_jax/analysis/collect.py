"""The library behind python -m prdarts_jax.collect runs/grid [--format md|csv] [--out FILE]

Gathers the finished search and retraining workdirs under the given directories into one results
table in the layout of the paper's Table 3 (architecture, test error per dataset as mean ± std
over seeds, parameters, search cost, search space). Unfinished or unreadable workdirs are listed
as skipped, each with a one-line reason. Reads JSON files only: instant, no JAX.
"""

from __future__ import annotations

from typing import Sequence

from prdarts_jax.analysis.results_table import build_table, to_csv, to_markdown
from prdarts_jax.analysis.workdir_scan import scan


def collect(roots: Sequence[str], fmt: str = "md", unit: str = "hours",
            with_paper: bool = False) -> tuple[str, list[str]]:
    """(the table as text, one line per skipped workdir)."""
    collection = scan(roots)
    table = build_table(collection, with_paper)
    text = to_markdown(table, unit) if fmt == "md" else to_csv(table, unit)
    skipped = [f"skipped {s.workdir}: {s.reason}" for s in collection.skipped]
    if not collection.searches and not collection.trainings:
        skipped.append(f"no finished search or retraining under {', '.join(roots)}")
    return text, skipped

