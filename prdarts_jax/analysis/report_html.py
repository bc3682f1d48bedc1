"""`report.html`: one self-contained page that leads with the result.

The page opens with the summary (`summary.summary`): the discovered cells side by side, the
final validation accuracy, the final network's size, the search's time and compile share, the
config and the command that retrains the genotype, then the op notation's legend (once). Below
follow the paper-style figure, the statistics dashboard and its tables, other genotypes' cells,
the pools and every epoch record. It links only files next to it by relative paths (no network,
no script), so it renders offline.
"""

from __future__ import annotations

import html
import json
import os
from typing import Any, Mapping, Sequence

from prdarts_jax.analysis.cell_graph import STRIDE2_NOTE
from prdarts_jax.analysis.plots_pools import edge_name, pool_rows
from prdarts_jax.analysis.search_run import SearchRun
from prdarts_jax.analysis.summary import format_duration
from prdarts_jax.search.statistics import SETTING_KEYS
from prdarts_jax.space.genotypes import Genotype
from prdarts_jax.space.opspec import NOTATION_LEGEND
from prdarts_jax.space.spaces import CELL_TYPES

PROVISIONAL_NOTE = ("The search has not finished: per edge its strongest op and per node the "
                    "two strongest edges by the α of the last finished cycle; not the result.")
MAIN_GENOTYPES = ("search", "provisional")
"""Names of the search's own genotype (drawn in the summary); others are `--genotype`s."""


def _rel(path: str, out_dir: str) -> str:
    return html.escape(os.path.relpath(path, out_dir).replace(os.sep, "/"))


def _png(files: Sequence[str]) -> str | None:
    return next((f for f in files if f.endswith(".png") and os.path.isfile(f)), None)


def figure(files: Sequence[str], out_dir: str, caption: str, css: str = "",
           style: str = "") -> str:
    """A linked PNG with its caption and links to every format written; "" without a PNG."""
    png = _png(files)
    if png is None:
        return ""
    links = " ".join(f'<a href="{_rel(f, out_dir)}">{os.path.splitext(f)[1][1:]}</a>'
                     for f in files if os.path.isfile(f))
    attrs = (f" class='{css}'" if css else "") + (f" style='{style}'" if style else "")
    return (f'<figure{attrs}><a href="{_rel(png, out_dir)}"><img src="{_rel(png, out_dir)}" '
            f'alt="{html.escape(caption)}"></a><figcaption>{html.escape(caption)} '
            f"({links})</figcaption></figure>")


def _png_width(files: Sequence[str]) -> int:
    from PIL import Image

    png = _png(files)
    if png is None:
        return 1
    with Image.open(png) as im:
        return im.size[0]


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


def pool_table(run: SearchRun, cell: str) -> str:
    """The pools of `cell` per edge and cycle as an HTML table (the text of `plot_pools`)."""
    titles, rows = pool_rows(run.pools, run.reports, cell, run.genotype)
    body = [[edge_name(e)] + ["; ".join(f"{x.text().strip()} {x.tail().strip()}".strip()
                                        for x in col) for col in row]
            for e, row in enumerate(rows)]
    return _table(["edge", *titles], body)


CSS = """
body { font-family: -apple-system, Segoe UI, Helvetica, Arial, sans-serif; margin: 1em 1.5em;
       color: #222; max-width: 1700px; }
h1 { font-size: 1.45em; margin: 0.2em 0; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ddd; }
figure { margin: 0.6em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.85em; color: #555; }
table { border-collapse: collapse; font-size: 0.8em; margin: 0.5em 0 1em; }
th, td { border: 1px solid #ddd; padding: 2px 6px; text-align: right; white-space: nowrap; }
th { background: #f3f3f3; position: sticky; top: 0; } td:first-child { text-align: left; }
.scroll { max-height: 32em; max-width: 100%; overflow: auto; display: inline-block; }
.cells { display: flex; flex-wrap: wrap; gap: 1em; } .cells figure { flex: 1 1 640px; }
.summary .cells { flex-wrap: nowrap; } .summary .cells figure { flex: 1 1 0; min-width: 0; }
pre { background: #f7f7f7; padding: 0.5em; overflow-x: auto; margin: 0.2em 0; }
.note { color: #555; margin: 0.3em 0; }
.status { color: #444; margin: 0 0 0.6em; }
.kpis { display: flex; flex-wrap: wrap; gap: 0.8em; margin: 0.4em 0; }
.kpi { border: 1px solid #d8dee6; border-radius: 6px; padding: 0.35em 0.9em; background: #f7f9fc;
       min-width: 14em; }
.kpi .v { font-size: 1.7em; font-weight: 600; } .kpi .k { font-size: 0.85em; color: #555; }
table.facts { font-size: 0.9em; } table.facts th { text-align: left; position: static;
  vertical-align: top; } table.facts td { text-align: left; white-space: normal; }
table.facts pre { margin: 0; }
.legend { font-size: 0.85em; color: #444; max-width: 75em; }
.paper img { width: 525px; }
"""


def status(run: SearchRun) -> str:
    """Finished, or how far the records go."""
    planned = len(run.config.get("schedule", {}).get("epochs", [])) or None
    if run.finished:
        return "finished (genotype.json written)"
    if not run.epochs:
        return "no epoch finished yet"
    last = run.epochs[-1]
    of = f" of {planned}" if planned else ""
    return (f"not finished: last record cycle {last['cycle']}{of}, epoch {last['epoch']} "
            "(still running, or stopped)")


def _kpi(value: str, key: str) -> str:
    return f"<div class='kpi'><div class='v'>{html.escape(value)}</div>" \
           f"<div class='k'>{key}</div></div>"


def _kpis(s: Mapping[str, Any]) -> str:
    """The four numbers: validation accuracy, parameters, wall time, compile share."""
    cycle, epoch = s["val_acc_at"]
    net = s["final_network"]
    prov = " (provisional genotype)" if not s["finished"] else ""
    done = f"{s['cycles_done']} of {s['cycles_planned']}" if s["cycles_planned"] \
        else str(s["cycles_done"])
    share = s["compile_share"]
    return "<div class='kpis'>" + "".join([
        _kpi("—" if s["val_acc"] is None else f"{s['val_acc']:.1%}",
             f"validation accuracy ({html.escape(str(s['config']['dataset']))}, α half)<br>"
             f"last epoch (cycle {cycle}, epoch {epoch})"),
        _kpi("—" if s["params"] is None else f"{s['params'] / 1e6:.2f} M",
             f"parameters of the final network{prov}<br>C={net['channels']}, {net['layers']} "
             "cells, CIFAR-10 32×32, no auxiliary head"
             + ("" if s.get("madds") is None else f"; {s['madds'] / 1e9:.2f} G MAdds")),
        _kpi(format_duration(s["search_seconds"]),
             f"search wall time<br>{s['epochs']} epochs, {done} cycles finished"),
        _kpi("—" if share is None else f"{share:.0%}",
             "of it compiling" if share is not None
             else "compile share: not logged<br>(no compile_seconds in metrics.jsonl)"),
    ]) + "</div>"


def _facts(s: Mapping[str, Any]) -> str:
    cfg = s["config"]
    forms = {"dataset": "{}", "space": "space {}", "C": "C={}", "layers": "{} cells",
             "seed": "seed {}", "batch_size": "batch {}"}
    config = " · ".join(f.format(cfg[k]) for k, f in forms.items() if cfg.get(k) is not None)
    genotype = (f"<pre>{html.escape(s['genotype'])}</pre>({html.escape(s['genotype_source'])})"
                if s["genotype"] else "none yet: no cycle has finished")
    retrain = f"<pre>{html.escape(s['retrain_command'])}</pre>"
    if s.get("retrain_note"):
        retrain = f"{html.escape(s['retrain_note'])}{retrain}"
    rows = [("genotype", genotype), ("config", html.escape(config)),
            ("schedule", html.escape(cfg["schedule"])), ("retrain", retrain)]
    body = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    return f"<table class='facts'>{body}</table>"


def _summary(s: Mapping[str, Any], out_dir: str, cells: Mapping[str, Any] | None,
             renderer: str) -> str:
    parts = ["<section class='summary'>", _kpis(s)]
    if cells:
        parts.append("<div class='cells'>")
        for cell in CELL_TYPES:     # widths in proportion: both drawn at one scale
            name = "reduction" if cell == "reduce" else cell
            grow = _png_width(cells[cell].files)
            parts.append(figure(cells[cell].files, out_dir, f"{name} cell",
                                style=f"flex: {grow} 1 0"))
        parts.append("</div>")
        note = f"{renderer} Reduction cell: {STRIDE2_NOTE}."
        if not s["finished"]:
            note = f"{PROVISIONAL_NOTE} {note}"
        parts.append(f"<p class='note'>{html.escape(note)}</p>")
    parts.append(_facts(s))
    parts.append(f"<p class='legend'><b>Op notation.</b> {html.escape(NOTATION_LEGEND)}</p>")
    parts.append("</section>")
    return "\n".join(parts)


def _head(run: SearchRun) -> str:
    name = os.path.basename(os.path.normpath(run.workdir))
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'>"
            f"<title>PR-DARTS search report: {html.escape(run.workdir)}</title>"
            f"<style>{CSS}</style></head><body>"
            f"<h1>PR-DARTS search: {html.escape(name)}</h1>"
            f"<p class='status'>workdir <code>{html.escape(run.workdir)}</code>: "
            f"{html.escape(status(run))}.</p>")


def _statistics(run: SearchRun, out_dir: str, figures: Mapping[str, Any]) -> list[str]:
    parts = ["<h2>Search statistics</h2>",
             figure(figures["paper"], out_dir,
                    "Paper-style figure (the paper's Figure 2, one column wide): per cycle the "
                    "shares of conv, pool and skip among the trained ops and the mean "
                    "similarity of the pools, per cell type.", css="paper"),
             figure(figures["search"], out_dir,
                    "Schedule, learning rate, accuracy, loss, batch size and time per epoch; "
                    "op types, kernel sizes, similarity and parent probability per cycle (the "
                    "pools each cycle trains with).")]
    for cell in CELL_TYPES:
        parts.append(f"<h3>Per-cycle statistics, {cell} cell</h3>"
                     f"<div class='scroll'>{_stats_table(run, cell)}</div>")
    return parts


def _other_cells(genotypes: Sequence[tuple[str, str, Genotype]], out_dir: str,
                 cells: Mapping[str, Any]) -> list[str]:
    others = [g for g in genotypes if g[0] not in MAIN_GENOTYPES]
    if not others:
        return []
    parts = ["<h2>Other cells</h2>"]
    for name, title, g in others:
        parts.append(f"<h3>{html.escape(title)}</h3><pre>{html.escape(g.describe())}</pre>"
                     "<div class='cells'>")
        parts += [figure(cells[name][cell].files, out_dir, f"{title}: {cell}")
                  for cell in CELL_TYPES]
        parts.append("</div>")
    return parts


def render_page(run: SearchRun, summary: Mapping[str, Any], out_dir: str, *,
                figures: Mapping[str, Any], genotypes: Sequence[tuple[str, str, Genotype]],
                renderer: str, notes: Sequence[str]) -> str:
    """The HTML of report.html. `figures`: "search", "paper" and per cell type "pools" image
    files, and "cells" {genotype name: {cell: CellDrawing}}; `genotypes`: (name, title,
    genotype), the search's own first; `renderer`: what drew the cells; `notes`: one line
    each, shown under the summary."""
    main = next((n for n, _, _ in genotypes if n in MAIN_GENOTYPES), None)
    parts = [_head(run), _summary(summary, out_dir, figures["cells"].get(main), renderer)]
    parts += [f"<p class='note'>{html.escape(n)}</p>" for n in notes]
    parts += _statistics(run, out_dir, figures)
    parts += _other_cells(genotypes, out_dir, figures["cells"])
    parts.append("<h2>Pools per edge and cycle</h2>")
    for cell in CELL_TYPES:
        parts.append(figure(figures["pools"][cell], out_dir, f"{cell} cell pools"))
        parts.append(f"<details><summary>as a table</summary><div class='scroll'>"
                     f"{pool_table(run, cell)}</div></details>")
    parts.append(f"<h2>Per-epoch metrics</h2><div class='scroll'>{_epoch_table(run)}</div>")
    parts.append("<h2>Config</h2><details><summary>config.json</summary><pre>"
                 f"{html.escape(json.dumps(run.config, indent=1))}</pre></details></body></html>")
    return "\n".join(p for p in parts if p)
