"""A genotype's cells drawn as graphs, as in the paper's Figure 3.

Inputs c_{k-2} and c_{k-1}, the intermediate nodes 0..3 and the output c_{k}; each chosen op is
an edge labelled with its display label (`Conv(5x5, mult=[1])`) and the concatenated states
feed c_{k}. Graphviz `dot` draws it when it is on PATH; otherwise a plain matplotlib drawing
(fixed layout, curved edges) stands in, so a report never needs Graphviz.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch

from prdarts_jax.space.genotypes import Genotype
from prdarts_jax.space.opspec import OpSpec
from prdarts_jax.space.spaces import NODES

KIND_COLORS = {"conv": "#1f6fb4", "pool": "#e07b10", "skip": "#2b9a3a"}
_INPUT_FILL, _NODE_FILL, _OUTPUT_FILL = "#c1e1c1", "#add8e6", "#eee8aa"


def state_name(i: int) -> str:
    """The display name of state i of a cell (0, 1: the inputs; 2+: the nodes)."""
    return ("c_{k-2}", "c_{k-1}")[i] if i < 2 else str(i - 2)


def _edges(genotype: Genotype, cell: str) -> list[tuple[int, int, OpSpec]]:
    """(source state, target state, op) for each op of the cell."""
    return [(i, 2 + n // 2, op) for n, (op, i) in enumerate(getattr(genotype, cell))]


def to_dot(genotype: Genotype, cell: str) -> str:
    """The Graphviz source of one cell (`cell` is "normal" or "reduce")."""
    def q(name: str) -> str:
        return '"' + name.replace('"', r"\"") + '"'

    lines = ["digraph cell {", "  rankdir=LR; bgcolor=white;",
             '  node [shape=rect, style="filled,rounded", fontname="Helvetica", fontsize=18,'
             " height=0.5, penwidth=1.5];",
             '  edge [fontname="Helvetica", fontsize=13, penwidth=1.5, arrowsize=0.8];']
    for i in (0, 1):
        sub = "k-2" if i == 0 else "k-1"
        lines.append(f"  {q(state_name(i))} [label=<c<SUB>{sub}</SUB>>, "
                     f"fillcolor={q(_INPUT_FILL)}];")
    for j in range(NODES):
        lines.append(f"  {q(state_name(j + 2))} [fillcolor={q(_NODE_FILL)}];")
    lines.append(f'  {q("c_{k}")} [label=<c<SUB>k</SUB>>, fillcolor={q(_OUTPUT_FILL)}];')
    for src, dst, op in _edges(genotype, cell):
        color = KIND_COLORS[op.kind]
        lines.append(f"  {q(state_name(src))} -> {q(state_name(dst))} "
                     f"[label={q(op.label)}, color={q(color)}, fontcolor={q(color)}];")
    for s in getattr(genotype, f"{cell}_concat"):
        lines.append(f'  {q(state_name(s))} -> {q("c_{k}")} [color="#777777"];')
    lines.append("}")
    return "\n".join(lines) + "\n"


_SPACING = 2.6
_FIG_WIDTH = 14.0
_LABEL_PT = 10.0


def _x(state: int | str) -> float:
    return _SPACING * (2 + NODES + 0.4 if state == "out" else state)


_XLIM = (-1.2, _x("out") + 1.2)
_UNITS_PER_PT = (_XLIM[1] - _XLIM[0]) / (_FIG_WIDTH * 72 * 0.9)


def _draw_node(ax, x: float, text: str, fill: str) -> None:
    ax.text(x, 0.0, text, ha="center", va="center", fontsize=13, zorder=5,
            bbox=dict(boxstyle="round,pad=0.45", fc=fill, ec="black", lw=1.2))


def _label_box(x: float, y: float, label: str) -> tuple[float, float, float, float]:
    half_w = (0.6 * _LABEL_PT * len(label) / 2 + 4) * _UNITS_PER_PT
    half_h = (0.7 * _LABEL_PT + 3) * _UNITS_PER_PT
    return x - half_w, x + half_w, y - half_h, y + half_h


def _overlaps(a: tuple, b: tuple) -> bool:
    return a[0] < b[1] and b[0] < a[1] and a[2] < b[3] and b[2] < a[3]


def _arc(ax, src: int, dst: int | str, above: bool, color: str, label: str | None,
         placed: list[tuple], lw: float = 1.6) -> float:
    """An arc from state `src` to `dst` on the line y = 0, raised until its label clears the
    labels placed so far; returns the apex height."""
    x0, x1 = _x(src), _x(dst)
    sign = 1.0 if above else -1.0
    for step in range(12):
        rad = 0.5 + 0.1 * step
        apex = sign * rad * (x1 - x0) / 2
        box = _label_box((x0 + x1) / 2, apex, label or "")
        if label is None or not any(_overlaps(box, other) for other in placed):
            break
    ax.add_patch(FancyArrowPatch((x0, 0.0), (x1, 0.0), connectionstyle=f"arc3,rad={-sign * rad}",
                                 arrowstyle="-|>", mutation_scale=14, color=color, lw=lw,
                                 shrinkA=14, shrinkB=14, zorder=2))
    if label is not None:
        placed.append(box)
        ax.text((x0 + x1) / 2, apex, label, ha="center", va="center", fontsize=_LABEL_PT,
                color=color, zorder=4,
                bbox=dict(boxstyle="round,pad=0.2", fc="white", ec="none", alpha=0.95))
    return abs(apex)


def _draw_matplotlib(genotype: Genotype, cell: str, title: str, stem: str) -> list[str]:
    """An arc diagram: all states on one line, each node's first op arcs above the line and
    its second below; an arc rises further where its label would cover another."""
    fig = Figure(figsize=(_FIG_WIDTH, 6.5))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    height, placed = 0.0, [_label_box(_x(s), 0.0, "c_{k-2}") for s in range(2 + NODES)]
    for n, (src, dst, op) in enumerate(_edges(genotype, cell)):
        height = max(height, _arc(ax, src, dst, n % 2 == 0, KIND_COLORS[op.kind], op.label,
                                  placed))
    for s in getattr(genotype, f"{cell}_concat"):
        height = max(height, _arc(ax, s, "out", False, "#aaaaaa", None, placed, lw=1.0))
    for i in (0, 1):
        _draw_node(ax, _x(i), f"$c_{{{'k-2' if i == 0 else 'k-1'}}}$", _INPUT_FILL)
    for j in range(NODES):
        _draw_node(ax, _x(j + 2), str(j), _NODE_FILL)
    _draw_node(ax, _x("out"), "$c_{k}$", _OUTPUT_FILL)
    ax.set_xlim(*_XLIM)
    ax.set_ylim(-height - 0.6, height + 0.6)
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=13)
    ax.axis("off")
    return save_figure(fig, stem, dpi=110, bbox_inches="tight")


def save_figure(fig: Figure, stem: str, dpi: int, **kwargs) -> list[str]:
    """Writes `stem`.png and `stem`.svg; returns their paths."""
    files = []
    for ext in ("png", "svg"):
        path = f"{stem}.{ext}"
        fig.savefig(path, dpi=dpi, **kwargs)
        files.append(path)
    return files


def _draw_dot(dot: str, source: str, title: str, stem: str) -> list[str]:
    titled = source.replace("rankdir=LR;", f'rankdir=LR; label="{title}"; labelloc=t; '
                            'fontname="Helvetica"; fontsize=16;', 1)
    files = []
    for ext, extra in (("png", ["-Gdpi=110"]), ("svg", [])):
        path = f"{stem}.{ext}"
        subprocess.run([dot, f"-T{ext}", *extra, "-o", path], input=titled, text=True,
                       check=True, capture_output=True, timeout=60)
        files.append(path)
    return files


def draw_cell(genotype: Genotype, cell: str, stem: str, title: str = "") -> list[str]:
    """Writes `<stem>.png`, `<stem>.svg` and `<stem>.dot`; returns the paths of the images.

    Graphviz renders when `dot` is on PATH (and succeeds), matplotlib otherwise."""
    if cell not in ("normal", "reduce"):
        raise ValueError(f"unknown cell type {cell!r}; expected 'normal' or 'reduce'")
    source = to_dot(genotype, cell)
    with open(f"{stem}.dot", "w") as f:
        f.write(source)
    dot = shutil.which("dot")
    if dot is not None:
        try:
            return _draw_dot(dot, source, title, stem)
        except (OSError, subprocess.SubprocessError):
            pass
    return _draw_matplotlib(genotype, cell, title, stem)


def draw_genotype(genotype: Genotype, out_dir: str, name: str, title: str) -> dict[str, list[str]]:
    """Both cells of a genotype as `cell_<name>_<normal|reduce>.*` in `out_dir`."""
    return {cell: draw_cell(genotype, cell, os.path.join(out_dir, f"cell_{name}_{cell}"),
                            f"{title} — {cell} cell")
            for cell in ("normal", "reduce")}
