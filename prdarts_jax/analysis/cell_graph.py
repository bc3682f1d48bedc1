"""A genotype's cells drawn as graphs, as in the paper's Figure 3.

Inputs c_{k-2} and c_{k-1}, the intermediate nodes 0..3 and the output c_{k}; each chosen op is
an edge labelled with its notation (`op.notation`, e.g. `conv(k5,[1])`) and the concatenated
states feed c_{k}. In a reduction cell the edges from the two inputs run at stride 2: they are
dashed and their labels end in ` /2`. Graphviz `dot` draws the cells when it is on PATH;
otherwise a matplotlib arc diagram stands in (the labels placed from their rendered extents so
that none covers another), so a report never needs Graphviz.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
from typing import Mapping

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch
from matplotlib.transforms import Bbox

from prdarts_jax.space.genotypes import Genotype
from prdarts_jax.space.opspec import OpSpec
from prdarts_jax.space.spaces import NODES

KIND_COLORS = {"conv": "#1f6fb4", "pool": "#e07b10", "skip": "#2b9a3a"}
_INPUT_FILL, _NODE_FILL, _OUTPUT_FILL = "#c1e1c1", "#add8e6", "#eee8aa"
STRIDE2_SUFFIX = " /2"
STRIDE2_NOTE = "dashed, /2: stride 2"
GRAPHVIZ_HINT = "apt install graphviz"


def state_name(i: int) -> str:
    """The display name of state i of a cell (0, 1: the inputs; 2+: the nodes)."""
    return ("c_{k-2}", "c_{k-1}")[i] if i < 2 else str(i - 2)


@dataclasses.dataclass(frozen=True)
class Edge:
    """One chosen op of a cell: from state `src` to state `dst`, at stride 2 or not."""

    src: int
    dst: int
    op: OpSpec
    stride2: bool

    @property
    def label(self) -> str:
        return self.op.notation + (STRIDE2_SUFFIX if self.stride2 else "")


def cell_edges(genotype: Genotype, cell: str) -> list[Edge]:
    """The edges of one cell in genotype order; in a reduction cell those whose input is a cell
    input (state 0 or 1) run at stride 2."""
    return [Edge(i, 2 + n // 2, op, cell == "reduce" and i < 2)
            for n, (op, i) in enumerate(getattr(genotype, cell))]


def to_dot(genotype: Genotype, cell: str) -> str:
    """The Graphviz source of one cell (`cell` is "normal" or "reduce")."""
    def q(name: str) -> str:
        return '"' + name.replace('"', r"\"") + '"'

    lines = ["digraph cell {", "  rankdir=LR; bgcolor=white;",
             ('  node [shape=rect, style="filled,rounded", fontname="Helvetica", fontsize=18,'
              " height=0.5, penwidth=1.5];"),
             '  edge [fontname="Helvetica", fontsize=13, penwidth=1.5, arrowsize=0.8];']
    for i in (0, 1):
        sub = "k-2" if i == 0 else "k-1"
        lines.append(f"  {q(state_name(i))} [label=<c<SUB>{sub}</SUB>>, "
                     f"fillcolor={q(_INPUT_FILL)}];")
    for j in range(NODES):
        lines.append(f"  {q(state_name(j + 2))} [fillcolor={q(_NODE_FILL)}];")
    lines.append(f'  {q("c_{k}")} [label=<c<SUB>k</SUB>>, fillcolor={q(_OUTPUT_FILL)}];')
    for e in cell_edges(genotype, cell):
        color = KIND_COLORS[e.op.kind]
        style = ", style=dashed" if e.stride2 else ""
        lines.append(f"  {q(state_name(e.src))} -> {q(state_name(e.dst))} "
                     f"[label={q(e.label)}, color={q(color)}, fontcolor={q(color)}{style}];")
    for s in getattr(genotype, f"{cell}_concat"):
        lines.append(f'  {q(state_name(s))} -> {q("c_{k}")} [color="#777777"];')
    lines.append("}")
    return "\n".join(lines) + "\n"


_SPACING = 2.5
_FIG_WIDTH = 9.0
_FIG_HEIGHT = 9.0
_LABEL_PT = 12.0
_PAD_PX = 5.0
_CONCAT_RAD = 0.3


def _x(state: int | str) -> float:
    return _SPACING * (2 + NODES + 0.3 if state == "out" else state)


_XLIM = (-1.0, _x("out") + 1.0)
_HALF_HEIGHT = (_XLIM[1] - _XLIM[0]) * _FIG_HEIGHT / _FIG_WIDTH / 2
"""The axes fill the figure with equal units on both axes while the labels are placed; then
the figure shrinks to the drawing (`_fit_to_drawing`)."""


def _overlap(a: Bbox, b: Bbox) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def _draw_node(ax, renderer, x: float, text: str, fill: str) -> Bbox:
    t = ax.text(x, 0.0, text, ha="center", va="center", fontsize=14, zorder=5, clip_on=False,
                bbox={"boxstyle": "round,pad=0.45", "fc": fill, "ec": "black", "lw": 1.2})
    return t.get_window_extent(renderer).padded(0.5 * 14 + _PAD_PX)


def _arc(ax, src: int, dst: int | str, rad: float, **style) -> None:
    ax.add_patch(FancyArrowPatch((_x(src), 0.0), (_x(dst), 0.0),
                                 connectionstyle=f"arc3,rad={rad}", arrowstyle="-|>",
                                 mutation_scale=14, shrinkA=16, shrinkB=16, zorder=2,
                                 clip_on=False, **style))


def _labelled_arc(ax, renderer, edge: Edge, above: bool, placed: list[Bbox]) -> float:
    """An arc from `edge.src` to `edge.dst` raised until its label, measured as rendered,
    covers no extent in `placed` (the nodes and earlier labels); returns the apex height."""
    x0, x1 = _x(edge.src), _x(edge.dst)
    sign = 1.0 if above else -1.0
    color = KIND_COLORS[edge.op.kind]
    text = ax.text((x0 + x1) / 2, 0.0, edge.label, ha="center", va="center",
                   fontsize=_LABEL_PT, color=color, zorder=4, clip_on=False,
                   gid=f"edge-label {edge.src}->{edge.dst}",
                   bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none", "alpha": 0.95})
    for step in range(400):
        rad = 0.5 + 0.05 * step
        apex = sign * rad * (x1 - x0) / 2
        text.set_y(apex)
        extent = text.get_window_extent(renderer).padded(_PAD_PX)
        if not any(_overlap(extent, other) for other in placed):
            break
    placed.append(extent)
    _arc(ax, edge.src, edge.dst, -sign * rad, color=color, lw=1.6,
         linestyle="--" if edge.stride2 else "-", gid=f"edge {edge.src}->{edge.dst}")
    return abs(apex)


def cell_figure(genotype: Genotype, cell: str, title: str = "") -> Figure:
    """The matplotlib drawing of one cell: all states on one line, each node's first op arcs
    above the line and its second below, each label at the apex of its arc."""
    fig = Figure(figsize=(_FIG_WIDTH, _FIG_HEIGHT))
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(*_XLIM)
    ax.set_ylim(-_HALF_HEIGHT, _HALF_HEIGHT)
    ax.axis("off")
    renderer = fig.canvas.get_renderer()
    placed = [_draw_node(ax, renderer, _x(i), f"$c_{{{'k-2' if i == 0 else 'k-1'}}}$",
                         _INPUT_FILL) for i in (0, 1)]
    placed += [_draw_node(ax, renderer, _x(j + 2), str(j), _NODE_FILL) for j in range(NODES)]
    placed.append(_draw_node(ax, renderer, _x("out"), "$c_{k}$", _OUTPUT_FILL))
    height, depth = 0.5, 0.5
    for n, edge in enumerate(cell_edges(genotype, cell)):
        apex = _labelled_arc(ax, renderer, edge, n % 2 == 0, placed)
        height, depth = (max(height, apex), depth) if n % 2 == 0 else (height, max(depth, apex))
    for s in getattr(genotype, f"{cell}_concat"):
        _arc(ax, s, "out", _CONCAT_RAD, color="#aaaaaa", lw=1.0)
        depth = max(depth, _CONCAT_RAD * (_x("out") - _x(s)) / 2)
    if title:
        ax.text((_XLIM[0] + _XLIM[1]) / 2, height + 0.6, title, ha="center", va="bottom",
                fontsize=13, clip_on=False)
    _fit_to_drawing(fig, ax, renderer, lowest=-depth)
    return fig


def _fit_to_drawing(fig: Figure, ax, renderer, lowest: float, margin_in: float = 0.15) -> None:
    """Shrinks the figure to what is drawn (the texts, and the arcs down to `lowest`), keeping
    the scale (data units per inch), so that the image has no empty band and every extent
    measured before stays valid relative to the others."""
    box = Bbox.union([t.get_window_extent(renderer) for t in ax.texts])
    box = box.padded(margin_in * fig.dpi)
    inv = ax.transData.inverted()
    (x0, y0), (x1, y1) = inv.transform([(box.x0, box.y0), (box.x1, box.y1)])
    y0 = min(y0, lowest - margin_in * (_XLIM[1] - _XLIM[0]) / _FIG_WIDTH)
    scale = _FIG_WIDTH / (_XLIM[1] - _XLIM[0])
    fig.set_size_inches((x1 - x0) * scale, (y1 - y0) * scale)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)


def save_figure(fig: Figure, stem: str, dpi: int, exts: tuple[str, ...] = ("png", "svg"),
                **kwargs) -> list[str]:
    """Writes `stem`.png and `stem`.svg (or `exts`); returns their paths."""
    files = []
    for ext in exts:
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


@dataclasses.dataclass(frozen=True)
class CellDrawing:
    """The images of one drawn cell and what drew them: "graphviz" or "matplotlib" (with why
    Graphviz did not, in `reason`)."""

    files: list[str]
    renderer: str
    reason: str = ""


def render_cell(genotype: Genotype, cell: str, stem: str, title: str = "") -> CellDrawing:
    """Writes `<stem>.png`, `<stem>.svg` and `<stem>.dot`; Graphviz renders when `dot` is on
    PATH (and succeeds), matplotlib otherwise."""
    if cell not in ("normal", "reduce"):
        raise ValueError(f"unknown cell type {cell!r}; expected 'normal' or 'reduce'")
    source = to_dot(genotype, cell)
    with open(f"{stem}.dot", "w") as f:
        f.write(source)
    dot = shutil.which("dot")
    reason = "Graphviz `dot` is not on PATH"
    if dot is not None:
        try:
            return CellDrawing(_draw_dot(dot, source, title, stem), "graphviz")
        except (OSError, subprocess.SubprocessError) as err:
            reason = f"Graphviz `dot` failed ({type(err).__name__})"
    files = save_figure(cell_figure(genotype, cell, title), stem, dpi=100)
    return CellDrawing(files, "matplotlib", reason)


def draw_cell(genotype: Genotype, cell: str, stem: str, title: str = "") -> list[str]:
    """`render_cell`, returning only the paths of the images (png, svg)."""
    return render_cell(genotype, cell, stem, title).files


def draw_genotype(genotype: Genotype, out_dir: str, name: str, title: str
                  ) -> dict[str, CellDrawing]:
    """Both cells of a genotype as `cell_<name>_<normal|reduce>.*` in `out_dir`; the reduction
    cell's title says how its stride-2 edges are marked."""
    return {cell: render_cell(genotype, cell, os.path.join(out_dir, f"cell_{name}_{cell}"),
                              f"{title} — {cell} cell"
                              + (f" ({STRIDE2_NOTE})" if cell == "reduce" else ""))
            for cell in ("normal", "reduce")}


def renderer_note(drawings: Mapping[str, Mapping[str, CellDrawing]]) -> str:
    """One line saying what drew the cells, and how to get Graphviz where matplotlib did."""
    cells = [d for by_cell in drawings.values() for d in by_cell.values()]
    if not cells:
        return ""
    if all(d.renderer == "graphviz" for d in cells):
        return f"Cells drawn by Graphviz ({shutil.which('dot') or 'dot'})."
    reason = next(d.reason for d in cells if d.renderer == "matplotlib")
    return (f"Cells drawn by matplotlib: {reason}; Graphviz would draw them if installed "
            f"({GRAPHVIZ_HINT}).")
