"""The search-statistics figure, in the spirit of the paper's Figure 2.

All panels share one x axis, the epochs of all cycles in order; each cycle is a band (its
planned length where the schedule is known) and grace epochs are hatched. Left column: what
happened per epoch (schedule, learning rate, accuracy, loss, batch size and time); right column:
the pools per cycle (op types and kernel sizes per cell type, similarity, conv details).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from prdarts_jax.analysis.cell_graph import KIND_COLORS, save_figure
from prdarts_jax.search.statistics import KERNEL_SIZES, OP_KINDS

CELL_STYLES = {"normal": dict(color="#1f6fb4", ls="-"), "reduce": dict(color="#c0392b", ls="--")}
_SCHEDULE_BARS = (("epochs", "#555555"), ("grace", "#aaaaaa"), ("ops/edge", "#1f6fb4"),
                  ("morphs", "#2b9a3a"), ("keep", "#e07b10"))


@dataclasses.dataclass(frozen=True)
class CycleAxis:
    """Where each cycle lies on the shared epoch axis: cycle c covers [start, start + span)."""

    cycles: tuple[int, ...]
    start: dict[int, int]
    span: dict[int, int]

    @staticmethod
    def build(epochs: Sequence[Mapping], schedule: Mapping[int, Mapping],
              stats: Mapping[int, Any]) -> "CycleAxis":
        done: dict[int, int] = {}
        for r in epochs:
            done[r["cycle"]] = max(done.get(r["cycle"], 0), r["epoch"] + 1)
        cycles = tuple(sorted(set(done) | set(schedule) | set(stats)))
        start, span, x = {}, {}, 0
        for c in cycles:
            start[c] = x
            span[c] = max(int(schedule.get(c, {}).get("epochs") or 0), done.get(c, 0), 1)
            x += span[c]
        return CycleAxis(cycles, start, span)

    def x(self, record: Mapping) -> int:
        return self.start[record["cycle"]] + record["epoch"]

    def edges(self) -> list[float]:
        return [self.start[c] - 0.5 for c in self.cycles] + [self.end - 0.5]

    def centre(self, c: int) -> float:
        return self.start[c] + (self.span[c] - 1) / 2

    @property
    def end(self) -> int:
        last = self.cycles[-1] if self.cycles else None
        return 0 if last is None else self.start[last] + self.span[last]


def _bands(ax, axis: CycleAxis, epochs: Sequence[Mapping], schedule: Mapping[int, Mapping]):
    for n, c in enumerate(axis.cycles):
        if n % 2:
            ax.axvspan(axis.start[c] - 0.5, axis.start[c] + axis.span[c] - 0.5,
                       color="#f2f2f2", zorder=0, lw=0)
        grace = schedule.get(c, {}).get("grace")
        if grace is None:
            grace = sum(1 for r in epochs if r["cycle"] == c and r.get("grace"))
        if grace:
            ax.axvspan(axis.start[c] - 0.5, axis.start[c] + grace - 0.5, facecolor="none",
                       hatch="///", edgecolor="#d9d9d9", lw=0, zorder=0)
    for edge in axis.edges()[1:-1]:
        ax.axvline(edge, color="#bbbbbb", lw=0.8, zorder=1)
    ax.grid(axis="y", color="#e5e5e5", lw=0.6)
    ax.set_axisbelow(True)


def _cycle_ticks(ax, axis: CycleAxis) -> None:
    top = ax.secondary_xaxis("top")
    top.set_xticks([axis.centre(c) for c in axis.cycles],
                   [f"cycle {c}" for c in axis.cycles], fontsize=8)
    top.tick_params(length=0)


def _series(ax, axis: CycleAxis, epochs: Sequence[Mapping], key: str, label: str, **kw) -> None:
    pts = [(axis.x(r), r[key]) for r in epochs if r.get(key) is not None]
    if pts:
        xs, ys = zip(*pts)
        ax.plot(xs, ys, marker="o", ms=3, lw=1.4, label=label, **kw)


def _per_cycle(ax, axis: CycleAxis, values: Mapping[int, float | None], label: str,
               **kw) -> None:
    """A step line holding each cycle's value over its band, with a dot at the centre."""
    ys = [np.nan if values.get(c) is None else float(values[c]) for c in axis.cycles]
    if all(math.isnan(y) for y in ys):
        return
    ax.stairs(ys, axis.edges(), baseline=None, lw=1.8, label=label, **kw)
    ax.plot([axis.centre(c) for c in axis.cycles], ys, ls="none", marker="o", ms=4,
            color=kw.get("color"))


def _stacked(ax, axis: CycleAxis, parts: Mapping[int, Mapping[str, float]],
             keys: Sequence[str], colors: Sequence[str], labels: Sequence[str]) -> None:
    cycles = [c for c in axis.cycles if c in parts]
    bottom = np.zeros(len(cycles))
    xs = [axis.centre(c) for c in cycles]
    widths = [axis.span[c] * 0.86 for c in cycles]
    for key, color, label in zip(keys, colors, labels):
        h = np.array([parts[c].get(key, 0.0) for c in cycles])
        ax.bar(xs, h, widths, bottom=bottom, color=color, label=label, edgecolor="white",
               lw=0.6)
        for x, b, v in zip(xs, bottom, h):
            if v >= 0.08:
                ax.text(x, b + v / 2, f"{v:.0%}", ha="center", va="center", fontsize=7,
                        color=_text_color(color))
        bottom += h
    ax.set_ylim(0, 1)


def _schedule_panel(ax, axis: CycleAxis, schedule: Mapping[int, Mapping],
                    stats: Mapping[int, Mapping]) -> None:
    n, top = len(_SCHEDULE_BARS), 1.0
    for c in axis.cycles:
        s = schedule.get(c, {})
        per_edge = [n for t in ("normal", "reduce") if c in stats
                    for n in stats[c][t]["ops_per_edge"]]
        values = {"epochs": s.get("epochs"), "grace": s.get("grace"),
                  "ops/edge": float(np.mean(per_edge)) if per_edge else None,
                  "morphs": s.get("morphs"), "keep": s.get("keep")}
        width = axis.span[c] * 0.86 / n
        left = axis.centre(c) - axis.span[c] * 0.43
        for i, (key, color) in enumerate(_SCHEDULE_BARS):
            v = values[key]
            if v is None:
                continue
            x = left + (i + 0.5) * width
            ax.bar(x, v, width * 0.9, color=color, label=key if c == axis.cycles[0] else None)
            text = f"{v:.2f}".rstrip("0").rstrip(".")
            ax.text(x, v, text, ha="center", va="bottom", fontsize=7)
            top = max(top, v)
    ax.set_ylim(0, top * 1.3 + 0.5)
    ax.set_ylabel("schedule per cycle")
    ax.legend(fontsize=7, loc="upper left", ncol=len(_SCHEDULE_BARS), framealpha=0.9)


def plot_search(epochs: Sequence[Mapping], stats: Mapping[int, Mapping],
                schedule: Mapping[int, Mapping], stem: str, title: str = "") -> list[str]:
    """Writes `<stem>.png` and `<stem>.svg`; returns their paths.

    `epochs`: the epoch records of metrics.jsonl in order; `stats`: `cycle_statistics` per
    cycle; `schedule`: per cycle the settings (epochs, grace, keep, morphs) where known."""
    axis = CycleAxis.build(epochs, schedule, stats)
    fig = Figure(figsize=(18, 19), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(6, 2, sharex=True)
    for ax in axes.flat:
        _bands(ax, axis, epochs, schedule)
    for ax in axes[0]:
        _cycle_ticks(ax, axis)
    _schedule_panel(axes[0, 0], axis, schedule, stats)
    _training_panels(axes[1:4, 0], axis, epochs)
    _time_panel(axes[4, 0], axis, epochs)
    _distinct_ops_panel(axes[5, 0], axis, stats)
    _pool_panels(axes[:, 1], axis, stats)
    _legends_and_labels(axes, axis)
    fig.suptitle(title or "search statistics", fontsize=13)
    return save_figure(fig, stem, dpi=90)


_HALVES = (("train", "train (weight half)", "#1f6fb4"),
           ("alpha", "train (α half, α steps)", "#8fb9dd"),
           ("val", "validation (α half, inference)", "#c0392b"))


def _training_panels(axes, axis: CycleAxis, epochs: Sequence[Mapping]) -> None:
    """Learning rate, accuracies and losses per epoch."""
    lr_ax, acc_ax, loss_ax = axes
    _series(lr_ax, axis, epochs, "lr", "", color="#333333")
    lr_ax.set_ylabel("learning rate")
    for ax, metric in ((acc_ax, "acc"), (loss_ax, "loss")):
        for prefix, label, color in _HALVES:
            _series(ax, axis, epochs, f"{prefix}_{metric}", label, color=color)
    acc_ax.set_ylabel("accuracy")
    loss_ax.set_yscale("log")
    loss_ax.set_ylabel("loss (log scale)")


def _time_panel(ax, axis: CycleAxis, epochs: Sequence[Mapping]) -> None:
    """Seconds per epoch as bars, the batch size on a second axis."""
    pts = [(axis.x(r), r["seconds"]) for r in epochs if r.get("seconds") is not None]
    if pts:
        ax.bar(*zip(*pts), 0.7, color="#c9c9c9", label="seconds per epoch (a cycle's first "
               "epoch includes compiling)")
        ax.set_ylim(0, max(p[1] for p in pts) * 1.3)
    ax.set_ylabel("seconds per epoch")
    twin = ax.twinx()
    _series(twin, axis, epochs, "batch_size", "batch size", color="#8e44ad", drawstyle="steps-mid")
    twin.set_ylabel("batch size", color="#8e44ad")
    sizes = [r["batch_size"] for r in epochs if r.get("batch_size")]
    twin.set_ylim(0, max(sizes, default=1) * 1.35)
    handles = [h for a in (ax, twin) for h in a.get_legend_handles_labels()[0]]
    if handles:
        ax.legend(handles=handles, fontsize=7, loc="upper left", framealpha=0.9)


def _distinct_ops_panel(ax, axis: CycleAxis, stats: Mapping[int, Mapping]) -> None:
    for t in ("normal", "reduce"):
        _per_cycle(ax, axis, {c: s[t]["distinct_ops"] for c, s in stats.items()},
                   f"{t} cell", **CELL_STYLES[t])
    ax.set_ylabel("distinct ops in the cell")
    ax.set_ylim(bottom=0)


def _pool_panels(axes, axis: CycleAxis, stats: Mapping[int, Mapping]) -> None:
    """The right column: op types, kernel sizes, similarity, dilations and depths per cycle."""
    for row, t in ((0, "normal"), (1, "reduce")):
        _stacked(axes[row], axis, {c: s[t]["op_types"] for c, s in stats.items()},
                 OP_KINDS, [KIND_COLORS[k] for k in OP_KINDS], OP_KINDS)
        axes[row].set_ylabel(f"{t}: op types")
    for row, t in ((2, "normal"), (3, "reduce")):
        keys = sorted({k for s in stats.values() for k in s[t]["kernel_sizes"]} |
                      {str(k) for k in KERNEL_SIZES}, key=int)
        colors = [_kernel_color(int(k)) for k in keys]
        _stacked(axes[row], axis, {c: s[t]["kernel_sizes"] for c, s in stats.items()},
                 keys, colors, [f"{k}x{k}" for k in keys])
        axes[row].set_ylabel(f"{t}: conv kernel sizes")
    ax = axes[4]
    for t in ("normal", "reduce"):
        _per_cycle(ax, axis, {c: s[t]["similarity"] for c, s in stats.items()},
                   f"similarity, {t}", **CELL_STYLES[t])
        _per_cycle(ax, axis, {c: s[t]["parent_probability"] for c, s in stats.items()},
                   f"parent probability, {t}", color=CELL_STYLES[t]["color"], ls=":",
                   alpha=0.7)
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("similarity / probability")
    ax = axes[5]
    for t in ("normal", "reduce"):
        style = CELL_STYLES[t]
        _per_cycle(ax, axis, {c: 1 - s[t]["dilations"].get("1", 0.0) for c, s in stats.items()},
                   f"dilation ≥ 2, {t}", color=style["color"], ls=style["ls"])
        _per_cycle(ax, axis, {c: 1 - s[t]["depths"].get("0", 0.0) for c, s in stats.items()},
                   f"≥ 1 expansion layer, {t}", color=style["color"], ls=style["ls"], alpha=0.45)
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("fraction of the convs")


def _legends_and_labels(axes, axis: CycleAxis) -> None:
    for ax in axes[:, 0]:
        if ax.get_legend() is None and ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="best", framealpha=0.9)
    for ax in axes[:, 1]:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7.5, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                      frameon=False)
    for ax in axes[-1]:
        ax.set_xlabel("epoch (all cycles in order; hatched: grace epochs)")
        ax.set_xlim(-0.5, max(axis.end, 1) - 0.5)


def _kernel_color(k: int) -> str:
    palette = {1: "#c6dbef", 3: "#6baed6", 5: "#2171b5", 7: "#08306b"}
    return palette.get(k, "#041b3d")


def _text_color(color: str) -> str:
    r, g, b = (int(color[i:i + 2], 16) / 255 for i in (1, 3, 5))
    return "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.6 else "white"
