"""A search workdir rendered into one report directory (the library behind `prdarts_jax.report`).

`write_report` writes the summary's cells, the paper-style figure, the statistics dashboard, the
pool evolution, `report.html` (`report_html`) and, when tensorboardX is there, TensorBoard
events. It reads only files in the workdir, so a running or stopped search renders too, with a
provisional genotype from its last cycle's α. It imports JAX for one thing: the final network's
parameter count, from shapes (`summary.final_network_params`, no compile).
"""

from __future__ import annotations

import glob
import logging
import os
import re
from typing import Any, Sequence

from prdarts_jax.analysis.search_run import SearchRun, load_run
from prdarts_jax.errors import ConfigError
from prdarts_jax.runtime import tensorboard, workdirs
from prdarts_jax.space.genotypes import Genotype, load_genotype
from prdarts_jax.space.spaces import CELL_TYPES

__all__ = ["SearchRun", "load_run", "write_report"]
log = logging.getLogger("prdarts_jax")


def _safe_name(text: str) -> str:
    base = os.path.splitext(os.path.basename(text))[0] if os.sep in text or "." in text \
        else text
    return re.sub(r"[^A-Za-z0-9_-]+", "_", base) or "genotype"


def _write_tensorboard(run: SearchRun, genotypes: Sequence[tuple[str, str, Genotype]],
                       out_dir: str) -> str:
    """The genotypes as TensorBoard text under `<out>/tensorboard`, with the scalars too when
    the search did not write them live (`<workdir>/tensorboard`, runtime.tensorboard: a search
    from before that); returns a note."""
    try:
        from tensorboardX import SummaryWriter
    except ImportError:
        return "TensorBoard: skipped (tensorboardX is not installed)"
    logdir = os.path.join(out_dir, "tensorboard")
    os.makedirs(logdir, exist_ok=True)
    for old in glob.glob(os.path.join(logdir, "events.out.tfevents.*")):
        os.remove(old)
    writer = SummaryWriter(logdir)
    live = os.path.isdir(os.path.join(run.workdir, tensorboard.LOGDIR))
    if not live:
        records = [(step, r) for step, r in enumerate(run.epochs)] + [
            (c, {"type": "cycle_stats", **s}) for c, s in sorted(run.stats.items())]
        for step, record in records:
            for tag, value in tensorboard.scalars(record):
                writer.add_scalar(tag, value, step)
    for name, title, g in genotypes:
        text = "\n".join(f"    {line}" for line in g.describe().splitlines())
        writer.add_text(f"genotype/{name}", f"{title}\n\n{text}", 0)
    writer.close()
    if live:
        return (f"TensorBoard: tensorboard --logdir {os.path.join(run.workdir, tensorboard.LOGDIR)}"
                f" (the search's scalars); genotypes as text: tensorboard --logdir {logdir}")
    return f"TensorBoard: tensorboard --logdir {logdir} (scalars and genotypes)"


def _genotypes(run: SearchRun, extra: Sequence[str]) -> list[tuple[str, str, Genotype]]:
    """(name, title, genotype): the search's own (or provisional) first, then each `extra`."""
    run_name = os.path.basename(os.path.abspath(run.workdir))
    genotypes: list[tuple[str, str, Genotype]] = []
    if run.genotype is not None:
        genotypes.append(("search", f"{run_name}: the search's genotype", run.genotype))
    elif (provisional := run.provisional_genotype()) is not None:
        g, c = provisional
        genotypes.append(("provisional", f"{run_name}: provisional genotype after cycle {c}", g))
    for spec in extra:
        name = _safe_name(spec)
        while name in {n for n, _, _ in genotypes}:
            name += "_"
        genotypes.append((name, f"genotype {spec}", load_genotype(spec)))
    return genotypes


def _figures(run: SearchRun, genotypes: Sequence[tuple[str, str, Genotype]],
             out_dir: str) -> dict[str, Any]:
    from prdarts_jax.analysis.cell_graph import draw_genotype
    from prdarts_jax.analysis.plots_paper import plot_paper
    from prdarts_jax.analysis.plots_pools import plot_pools
    from prdarts_jax.analysis.plots_search import plot_search

    run_name = os.path.basename(os.path.abspath(run.workdir))
    return {
        "search": plot_search(run.epochs, run.stats, run.schedule,
                              os.path.join(out_dir, "search_statistics"),
                              f"{run_name}: search statistics"),
        "paper": plot_paper(run.stats, os.path.join(out_dir, "paper_figure")) if run.stats
        else [],
        "cells": {name: draw_genotype(g, out_dir, name, title) for name, title, g in genotypes},
        "pools": {cell: plot_pools(run.pools, run.reports, cell,
                                   os.path.join(out_dir, f"pools_{cell}"), run.genotype)
                  for cell in CELL_TYPES},
    }


def write_report(workdir: str, out: str | None = None,
                 extra_genotypes: Sequence[str] = ()) -> str:
    """Renders the report of `workdir`; returns the path of report.html."""
    from prdarts_jax.analysis.cell_graph import renderer_note
    from prdarts_jax.analysis.report_html import render_page
    from prdarts_jax.analysis.summary import summary

    run = load_run(workdir)
    genotypes = _genotypes(run, extra_genotypes)
    out_dir = out or os.path.join(workdir, "report")
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise ConfigError(f"--out {out_dir} is a file; name a folder for the report")
    workdirs.check_writable(out_dir, "--out")
    os.makedirs(out_dir, exist_ok=True)
    figures = _figures(run, genotypes, out_dir)
    renderer = renderer_note(figures["cells"])
    notes = [_write_tensorboard(run, genotypes, out_dir)]
    if not run.logged_stats:
        notes.append("Cycle statistics recomputed from the cycle records "
                     "(the search did not log cycle_stats).")
    page = render_page(run, summary(run), out_dir, figures=figures, genotypes=genotypes,
                       renderer=renderer, notes=notes)
    path = os.path.join(out_dir, "report.html")
    with open(path, "w") as f:
        f.write(page)
    for note in [renderer, *notes]:
        if note:
            log.info("%s", note)
    log.info("report written to %s", path)
    return path
