"""The evolution of every edge's candidate pool: a grid of edges × cycles for one cell type.

Each grid cell lists the ops the edge trained with in that cycle (`op.notation`), coloured by
kind, with softmax(α) at the end of the cycle; `+ op ← parent` marks a child born at the start
of the cycle, grey `✗` an op dropped at its end. A last column holds the final op of each edge,
`★` where the genotype uses the edge. The same rows are available as text (`pool_rows`) for
the HTML report.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from prdarts_jax.analysis.cell_graph import KIND_COLORS, save_figure, state_name
from prdarts_jax.search.pools import CellPools, PoolReport, softmax
from prdarts_jax.space.genotypes import Genotype
from prdarts_jax.space.opspec import OpSpec
from prdarts_jax.space.spaces import NODES

_FONT_PT = 7.5
_LINE_IN = 0.15
_CHAR_IN = 0.6 * _FONT_PT / 72
_DROPPED = "#9a9a9a"


def edge_endpoints() -> list[tuple[int, int]]:
    """(input state, node) of each edge in the supernet's order: node by node, inputs up."""
    return [(i, j) for j in range(NODES) for i in range(j + 2)]


def edge_name(e: int, math: bool = False) -> str:
    """`c_{k-2} → 0`; with `math`, the input in matplotlib's mathtext."""
    i, j = edge_endpoints()[e]
    name = state_name(i)
    return f"{f'${name}$' if math and i < 2 else name} → {j}"


@dataclasses.dataclass(frozen=True)
class OpEntry:
    """One op of one edge in one column of the grid."""

    op: OpSpec
    parent: OpSpec | None
    prob: float | None
    dropped: bool
    chosen: bool = False

    def text(self) -> str:
        born = f"+ {self.op.notation} ← {self.parent.notation}" if self.parent else None
        return ("★ " if self.chosen else "") + (born or f"  {self.op.notation}")

    def tail(self) -> str:
        prob = "" if self.prob is None else f"{self.prob:4.0%}"
        return ("✗ " if self.dropped else "") + prob


def pool_rows(pools: Mapping[int, CellPools], reports: Mapping[int, PoolReport],
              cell: str, genotype: Genotype | None = None
              ) -> tuple[list[str], list[list[list[OpEntry]]]]:
    """Column titles and `rows[edge][column]` entries for every column of `pools`."""
    titles, columns = [], []
    chosen = set()
    if genotype is not None:
        chosen = {(i, n // 2) for n, (_, i) in enumerate(getattr(genotype, cell))}
    for c in sorted(pools):
        after_final = c - 1 in reports and reports[c - 1].final
        titles.append("final" if after_final else f"cycle {c}")
        column = []
        for e, edge in enumerate(pools[c][cell]):
            births = {b.child: b.parent for b in reports[c - 1][cell][e].added} \
                if c - 1 in reports else {}
            end = reports.get(c)
            probs, dropped = {}, set()
            if end is not None:
                probs = dict(zip(end[cell][e].ops, softmax(end[cell][e].alpha).tolist()))
                dropped = set(end[cell][e].dropped)
            column.append([OpEntry(op, births.get(op), probs.get(op), op in dropped,
                                   after_final and edge_endpoints()[e] in chosen)
                           for op in edge.ops])
        columns.append(column)
    rows = [[col[e] for col in columns] for e in range(len(columns[0]) if columns else 0)]
    return titles, rows


def plot_pools(pools: Mapping[int, CellPools], reports: Mapping[int, PoolReport], cell: str,
               stem: str, genotype: Genotype | None = None, title: str = "") -> list[str]:
    """Writes `<stem>.png` and `<stem>.svg` (the grid for `cell`); returns their paths."""
    titles, rows = pool_rows(pools, reports, cell, genotype)
    entries = [x for row in rows for col in row for x in col]
    text_chars = max([len(x.text()) for x in entries] + [12])
    tail_chars = max([len(x.tail()) for x in entries] + [4])
    col_in = (text_chars + tail_chars + 4) * _CHAR_IN
    label_in, head_in = 1.05, 0.75
    heights = [max(len(col) for col in row) + 0.7 for row in rows]
    width = label_in + col_in * len(titles) + 0.1
    height = head_in + sum(heights) * _LINE_IN + 0.35
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    ax.axis("off")
    ax.text(0.1, 0.22, title or f"{cell} cell: candidate ops per edge and cycle",
            fontsize=11, va="center")
    ax.text(0.1, 0.45, "+ child ← parent: born at the cycle start;  ✗ grey: dropped at the end;"
            "  %: softmax(α) at the end of the cycle;  ★: edge used by the genotype",
            fontsize=7.5, va="center", color="#444444")
    for k, t in enumerate(titles):
        ax.text(label_in + (k + 0.5) * col_in, head_in - 0.12, t, ha="center", fontsize=9,
                weight="bold")
    y = head_in
    for e, row in enumerate(rows):
        h = heights[e] * _LINE_IN
        if e % 2 == 0:
            ax.add_patch(Rectangle((0, y), width, h, color="#f4f6f8", lw=0, zorder=0))
        ax.text(0.1, y + h / 2, edge_name(e, math=True), va="center", fontsize=9)
        for k, col in enumerate(row):
            x0 = label_in + k * col_in + 0.5 * _CHAR_IN
            for n, entry in enumerate(col):
                yy = y + (n + 0.85) * _LINE_IN
                color = _DROPPED if entry.dropped else KIND_COLORS[entry.op.kind]
                weight = "bold" if entry.chosen else "normal"
                ax.text(x0, yy, entry.text(), family="monospace", fontsize=_FONT_PT,
                        color=color, va="baseline", weight=weight)
                ax.text(x0 + col_in - 1.5 * _CHAR_IN, yy, entry.tail(), family="monospace",
                        fontsize=_FONT_PT, color=color, va="baseline", ha="right")
        y += h
    for k in range(len(titles) + 1):
        x = label_in + k * col_in - 0.05 * _CHAR_IN
        ax.plot([x, x], [head_in, y], color="#cccccc", lw=0.6)
    return save_figure(fig, stem, dpi=110)
