"""A paper-style figure of the search: the pool statistics of the paper's Figure 2, sized for one
column of a two-column paper.

Per cell type (normal above, reduction below) and cycle: the shares of conv, pool and skip among
the ops all edges train with (stacked bars; the paper's "distribution of operations") and the
mean similarity of the edges' pools (a line on the same 0–1 axis; the paper's "operation
similarity"). 3.5 in wide with every text at 8 pt or more, so it goes into a paper unscaled;
the 12-panel dashboard (`plots_search`) is for reading a run, this one for showing it.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patheffects import withStroke
from matplotlib.ticker import PercentFormatter

from prdarts_jax.analysis.cell_graph import KIND_COLORS, save_figure
from prdarts_jax.search.statistics import OP_KINDS
from prdarts_jax.space.spaces import CELL_TYPES

WIDTH_IN = 3.5
"""One column of a two-column paper."""
FONT_PT = 8.0
"""The smallest text size in print that stays legible; every text of the figure uses it."""
_HEIGHT_IN = 3.2


def _cell_panel(ax, stats: Mapping[int, Mapping], cell: str) -> None:
    cycles = sorted(stats)
    bottom = np.zeros(len(cycles))
    for kind in OP_KINDS:
        share = np.array([stats[c][cell]["op_types"].get(kind, 0.0) for c in cycles])
        ax.bar(cycles, share, 0.72, bottom=bottom, color=KIND_COLORS[kind], label=kind,
               edgecolor="white", lw=0.4)
        bottom += share
    ax.plot(cycles, [stats[c][cell]["similarity"] for c in cycles], color="black", lw=1.2,
            marker="o", ms=3, label="similarity",
            path_effects=[withStroke(linewidth=2.6, foreground="white")])
    ax.set_ylim(0, 1.0)
    ax.set_yticks([0, 0.5, 1.0])
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.set_ylabel(f"{'reduction' if cell == 'reduce' else cell} cell\nshare, similarity",
                  fontsize=FONT_PT)
    ax.tick_params(labelsize=FONT_PT, length=2.5, pad=2)
    ax.set_xticks(cycles)
    ax.set_xlim(min(cycles, default=1) - 0.6, max(cycles, default=1) + 0.6)


def paper_figure(stats: Mapping[int, Mapping]) -> Figure:
    """The figure for `stats` (`cycle_statistics` per cycle): one panel per cell type, a shared
    legend above them."""
    fig = Figure(figsize=(WIDTH_IN, _HEIGHT_IN), layout="constrained")
    FigureCanvasAgg(fig)
    fig.get_layout_engine().set(w_pad=0.02, h_pad=0.02)
    axes = fig.subplots(len(CELL_TYPES), 1, sharex=True)
    for ax, cell in zip(axes, CELL_TYPES):
        _cell_panel(ax, stats, cell)
    axes[-1].set_xlabel("cycle", fontsize=FONT_PT)
    handles, labels = axes[0].get_legend_handles_labels()
    order = [labels.index(k) for k in (*OP_KINDS, "similarity") if k in labels]
    fig.legend([handles[i] for i in order], [labels[i] for i in order], loc="outside upper center",
               ncol=len(order), fontsize=FONT_PT, frameon=False, handlelength=1.2,
               columnspacing=1.0, handletextpad=0.4)
    return fig


def plot_paper(stats: Mapping[int, Mapping], stem: str) -> list[str]:
    """Writes `<stem>.png` (300 dpi), `<stem>.pdf` and `<stem>.svg`; returns their paths."""
    return save_figure(paper_figure(stats), stem, dpi=300, exts=("png", "pdf", "svg"))
