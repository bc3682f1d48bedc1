"""A search workdir rendered into one report directory (the library behind `prdarts_jax.report`).

`write_report` writes the statistics figure, the cell graphs, the pool evolution, `report.html`
and (when tensorboardX is there) TensorBoard events; it reads only files in the workdir, so a
running or stopped search renders too, with a provisional genotype from its last cycle's α.
"""

from __future__ import annotations

import dataclasses
import glob
import html
import json
import logging
import os
import re
from typing import Any, Mapping, Sequence

from prdarts_jax.runtime.metrics import read_metrics
from prdarts_jax.search.pools import CellPools, PoolReport
from prdarts_jax.search.statistics import SETTING_KEYS, history_statistics, pool_history
from prdarts_jax.space.genotypes import Genotype, derive_genotype, load_genotype
from prdarts_jax.space.spaces import CELL_TYPES

log = logging.getLogger("prdarts_jax")
PROVISIONAL_NOTE = ("The search has not finished: per edge its strongest op and per node the "
                    "two strongest edges by the α of the last finished cycle; not the result.")


@dataclasses.dataclass(frozen=True)
class SearchRun:
    """What a search workdir holds, read back and ordered.

    `epochs`: epoch records sorted by (cycle, epoch), the last record of each pair winning (a
    resumed run may repeat epochs); `cycles`: the cycle records by cycle; `stats`: cycle
    statistics by cycle, as logged (`cycle_stats` records) or else recomputed from the cycle
    records; `schedule`: per cycle epochs, grace, keep, morphs from config.json, or what the
    records show."""

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
                               rule=self.config.get("genotype_edge_score", "max_weight")), c


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
    if not os.path.isfile(path):
        raise ValueError(f"{path} not found: {workdir!r} is not a search workdir; run "
                         f"`python -m prdarts_jax.search --config configs/quick.py --workdir "
                         f"{workdir}` first")
    epochs: dict[tuple[int, int], dict] = {}
    cycles: dict[int, dict] = {}
    logged: dict[int, dict] = {}
    for record in read_metrics(path):
        kind = record.get("type")
        if kind == "epoch":
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
                     pools, reports, genotype)


def _safe_name(text: str) -> str:
    base = os.path.splitext(os.path.basename(text))[0] if os.sep in text or "." in text \
        else text
    return re.sub(r"[^A-Za-z0-9_-]+", "_", base) or "genotype"


def _write_tensorboard(run: SearchRun, genotypes: Sequence[tuple[str, str, Genotype]],
                       out_dir: str) -> str:
    """Per-epoch scalars, per-cycle statistics and the genotypes as text; returns a note."""
    try:
        from tensorboardX import SummaryWriter
    except ImportError:
        return ("TensorBoard: skipped (tensorboardX is not installed; "
                "pip install 'prdarts_jax[tensorboard]')")
    logdir = os.path.join(out_dir, "tensorboard")
    os.makedirs(logdir, exist_ok=True)
    for old in glob.glob(os.path.join(logdir, "events.out.tfevents.*")):
        os.remove(old)
    writer = SummaryWriter(logdir)
    for step, r in enumerate(run.epochs):
        for key, value in r.items():
            if key not in ("type", "epoch") and isinstance(value, (int, float)):
                writer.add_scalar(f"epoch/{key}", float(value), step)
    for c, s in sorted(run.stats.items()):
        for t in CELL_TYPES:
            for key, value in s[t].items():
                if isinstance(value, dict):
                    for sub, v in value.items():
                        writer.add_scalar(f"cycle_{t}/{key}/{sub}", float(v), c)
                elif isinstance(value, (int, float)) and not isinstance(value, bool):
                    writer.add_scalar(f"cycle_{t}/{key}", float(value), c)
    for name, title, g in genotypes:
        text = "\n".join(f"    {line}" for line in g.describe().splitlines())
        writer.add_text(f"genotype/{name}", f"{title}\n\n{text}", 0)
    writer.close()
    return f"TensorBoard: tensorboard --logdir {logdir}"


def _rel(path: str, out_dir: str) -> str:
    return html.escape(os.path.relpath(path, out_dir).replace(os.sep, "/"))


def _figure(files: Sequence[str], out_dir: str, caption: str) -> str:
    png = next((f for f in files if f.endswith(".png") and os.path.isfile(f)), None)
    if png is None:
        return ""
    links = " ".join(f'<a href="{_rel(f, out_dir)}">{os.path.splitext(f)[1][1:]}</a>'
                     for f in files if os.path.isfile(f))
    return (f'<figure><a href="{_rel(png, out_dir)}"><img src="{_rel(png, out_dir)}" '
            f'alt="{html.escape(caption)}"></a><figcaption>{html.escape(caption)} '
            f"({links})</figcaption></figure>")


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape(str(value))


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(v)}</td>" for v in row) + "</tr>"
                   for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _epoch_table(run: SearchRun) -> str:
    keys: list[str] = []
    for r in run.epochs:
        keys += [k for k in r if k != "type" and k not in keys]
    return _table(keys, [[r.get(k) for k in keys] for r in run.epochs])


def _stats_table(run: SearchRun, cell: str) -> str:
    kernels = sorted({k for s in run.stats.values() for k in s[cell]["kernel_sizes"]}, key=int)
    header = (["cycle", *SETTING_KEYS, "ops/edge", "distinct ops", "conv", "pool", "skip"]
              + [f"{k}x{k}" for k in kernels]
              + ["dil ≥ 2", "≥ 1 exp. layer", "similarity", "parent prob.", "births",
                 "failed tries", "source"])
    rows = []
    for c, s in sorted(run.stats.items()):
        x = s[cell]
        per_edge = x["ops_per_edge"]
        rows.append([c, *(s.get("settings", {}).get(k) for k in SETTING_KEYS),
                     sum(per_edge) / len(per_edge), x["distinct_ops"],
                     *(f"{x['op_types'][k]:.0%}" for k in ("conv", "pool", "skip")),
                     *(f"{x['kernel_sizes'].get(k, 0.0):.0%}" for k in kernels),
                     f"{1 - x['dilations'].get('1', 0.0):.0%}",
                     f"{1 - x['depths'].get('0', 0.0):.0%}", x["similarity"],
                     x["parent_probability"], x["births"], x["failed_tries"],
                     "logged" if c in run.logged_stats else "recomputed"])
    return _table(header, rows)


def _pool_table(run: SearchRun, cell: str) -> str:
    from prdarts_jax.analysis.plots_pools import edge_name, pool_rows
    titles, rows = pool_rows(run.pools, run.reports, cell, run.genotype)
    body = [[edge_name(e)] + ["; ".join(f"{x.text().strip()} {x.tail().strip()}".strip()
                                        for x in col) for col in row]
            for e, row in enumerate(rows)]
    return _table(["edge", *titles], body)


_CSS = """
body { font-family: -apple-system, Segoe UI, Helvetica, Arial, sans-serif; margin: 1.5em;
       color: #222; max-width: 1700px; }
h1 { font-size: 1.5em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ddd; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.85em; color: #555; }
table { border-collapse: collapse; font-size: 0.8em; margin: 0.5em 0 1em; }
th, td { border: 1px solid #ddd; padding: 2px 6px; text-align: right; white-space: nowrap; }
th { background: #f3f3f3; position: sticky; top: 0; } td:first-child { text-align: left; }
.scroll { max-height: 32em; overflow: auto; display: inline-block; }
.cells { display: flex; flex-wrap: wrap; gap: 1em; } .cells figure { flex: 1 1 640px; }
pre { background: #f7f7f7; padding: 0.6em; overflow-x: auto; }
.note { color: #555; }
"""


def _status(run: SearchRun) -> str:
    planned = len(run.config.get("schedule", {}).get("epochs", [])) or None
    if run.finished:
        return "finished (genotype.json written)"
    if not run.epochs:
        return "no epoch finished yet"
    last = run.epochs[-1]
    of = f" of {planned}" if planned else ""
    return (f"not finished: last record cycle {last['cycle']}{of}, epoch {last['epoch']} "
            "(still running, or stopped)")


def _html(run: SearchRun, out_dir: str, figures: Mapping[str, Any],
          genotypes: Sequence[tuple[str, str, Genotype]], notes: Sequence[str]) -> str:
    cfg = run.config
    summary = ", ".join(f"{k} {cfg[k]}" for k in ("dataset", "space", "channels", "layers",
                                                  "batch_size", "seed") if k in cfg)
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'>"
             f"<title>PR-DARTS search report: {html.escape(run.workdir)}</title>"
             f"<style>{_CSS}</style></head><body>",
             f"<h1>PR-DARTS search report</h1><p>workdir <code>{html.escape(run.workdir)}"
             f"</code>: {html.escape(_status(run))}. {html.escape(summary)}.</p>"]
    parts += [f"<p class='note'>{html.escape(n)}</p>" for n in notes]
    parts.append("<h2>Search statistics</h2>")
    parts.append(_figure(figures["search"], out_dir,
                         "Schedule, learning rate, accuracy, loss, batch size and time per "
                         "epoch; op types, kernel sizes, similarity and parent probability per "
                         "cycle (the pools each cycle trains with)."))
    for cell in CELL_TYPES:
        parts.append(f"<h3>Per-cycle statistics, {cell} cell</h3>"
                     f"<div class='scroll'>{_stats_table(run, cell)}</div>")
    parts.append("<h2>Cells</h2>")
    for name, title, g in genotypes:
        caption = PROVISIONAL_NOTE if name == "provisional" else ""
        parts.append(f"<h3>{html.escape(title)}</h3><p class='note'>{caption}</p>"
                     f"<pre>{html.escape(g.describe())}</pre><div class='cells'>")
        for cell in CELL_TYPES:
            parts.append(_figure(figures["cells"][name][cell], out_dir, f"{title}: {cell}"))
        parts.append("</div>")
    if not genotypes:
        parts.append("<p class='note'>No genotype yet: no cycle has finished.</p>")
    parts.append("<h2>Pools per edge and cycle</h2>")
    for cell in CELL_TYPES:
        parts.append(_figure(figures["pools"][cell], out_dir, f"{cell} cell pools"))
        parts.append(f"<details><summary>as a table</summary><div class='scroll'>"
                     f"{_pool_table(run, cell)}</div></details>")
    parts.append(f"<h2>Per-epoch metrics</h2><div class='scroll'>{_epoch_table(run)}</div>")
    parts.append("<h2>Config</h2><details><summary>config.json</summary><pre>"
                 f"{html.escape(json.dumps(cfg, indent=1))}</pre></details></body></html>")
    return "\n".join(p for p in parts if p)


def write_report(workdir: str, out: str | None = None,
                 extra_genotypes: Sequence[str] = ()) -> str:
    """Renders the report of `workdir`; returns the path of report.html."""
    from prdarts_jax.analysis.cell_graph import draw_genotype
    from prdarts_jax.analysis.plots_pools import plot_pools
    from prdarts_jax.analysis.plots_search import plot_search

    run = load_run(workdir)
    out_dir = out or os.path.join(workdir, "report")
    os.makedirs(out_dir, exist_ok=True)
    run_name = os.path.basename(os.path.abspath(workdir))
    genotypes: list[tuple[str, str, Genotype]] = []
    if run.genotype is not None:
        genotypes.append(("search", f"{run_name}: the search's genotype", run.genotype))
    elif (provisional := run.provisional_genotype()) is not None:
        g, c = provisional
        genotypes.append(("provisional", f"{run_name}: provisional genotype after cycle {c}", g))
    for spec in extra_genotypes:
        name = _safe_name(spec)
        while name in {n for n, _, _ in genotypes}:
            name += "_"
        genotypes.append((name, f"genotype {spec}", load_genotype(spec)))

    figures: dict[str, Any] = {
        "search": plot_search(run.epochs, run.stats, run.schedule,
                              os.path.join(out_dir, "search_statistics"),
                              f"{run_name}: search statistics"),
        "cells": {name: draw_genotype(g, out_dir, name, title) for name, title, g in genotypes},
        "pools": {cell: plot_pools(run.pools, run.reports, cell,
                                   os.path.join(out_dir, f"pools_{cell}"), run.genotype)
                  for cell in CELL_TYPES},
    }
    notes = [_write_tensorboard(run, genotypes, out_dir)]
    if not run.logged_stats:
        notes.append("Cycle statistics recomputed from the cycle records "
                     "(the search did not log cycle_stats).")
    path = os.path.join(out_dir, "report.html")
    with open(path, "w") as f:
        f.write(_html(run, out_dir, figures, genotypes, notes))
    for note in notes:
        log.info("%s", note)
    log.info("report written to %s", path)
    return path

