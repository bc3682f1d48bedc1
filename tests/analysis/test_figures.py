"""The cell drawings (labels apart, stride-2 edges marked, the renderer named) and the
paper-style figure (one column wide, legible in print)."""

import itertools
import os
import re
import shutil

import pytest
from matplotlib.text import Text

from prdarts_jax.analysis import cell_graph
from prdarts_jax.analysis.plots_paper import paper_figure, plot_paper
from prdarts_jax.analysis.report import load_run, write_report
from prdarts_jax.space.genotypes import PUBLISHED
from tests.analysis.reports import QUICK_RUN, check_html, copy_run, summary_section

CELLS = [(name, cell) for name in ("DL1", "DL2", "DR", "UR", "DARTS_V2")
         for cell in ("normal", "reduce")]


def _labels(fig):
    return [t for t in fig.axes[0].texts if (t.get_gid() or "").startswith("edge-label")]


@pytest.mark.parametrize("name, cell", CELLS, ids=[f"{n}-{c}" for n, c in CELLS])
def test_matplotlib_cell_labels_do_not_overlap(name, cell):
    """Rendered as saved, no two edge labels' window extents intersect."""
    fig = cell_graph.cell_figure(PUBLISHED[name], cell, f"{name} {cell}")
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in _labels(fig)]
    assert len(boxes) == 8
    for (i, a), (j, b) in itertools.combinations(enumerate(boxes), 2):
        apart = a.x1 <= b.x0 or b.x1 <= a.x0 or a.y1 <= b.y0 or b.y1 <= a.y0
        assert apart, f"labels {i} and {j} overlap"


def _stride2_pairs(genotype, cell):
    return [(i, n // 2 + 2) for n, (_, i) in enumerate(getattr(genotype, cell))
            if cell == "reduce" and i < 2]


@pytest.mark.parametrize("cell", ["normal", "reduce"])
def test_stride_two_edges_are_marked_in_both_renderers(cell):
    """In a reduction cell the edges from the inputs (states 0, 1) run at stride 2: dashed
    and labelled ` /2` in the dot source and in the matplotlib drawing; no other edge is."""
    g = PUBLISHED["DL2"]
    expected = sorted(_stride2_pairs(g, cell))
    assert (len(expected) == 5) == (cell == "reduce")
    names = {cell_graph.state_name(i): i for i in range(6)}
    dot_marked = []
    for src, dst, attrs in re.findall(r'"([^"]+)" -> "([^"]+)" \[(.*)\];',
                                      cell_graph.to_dot(g, cell)):
        if dst != "c_{k}" and "style=dashed" in attrs:
            assert ' /2"' in attrs
            dot_marked.append((names[src], names[dst]))
        else:
            assert " /2" not in attrs
    assert sorted(dot_marked) == expected
    fig = cell_graph.cell_figure(g, cell)
    dashed = [p.get_gid() for p in fig.axes[0].patches if p.get_linestyle() == "--"]
    suffixed = [t.get_gid() for t in _labels(fig) if t.get_text().endswith(" /2")]
    want = sorted(f"edge {s}->{d}" for s, d in expected)
    assert sorted(dashed) == want
    assert sorted(s.replace("edge-label ", "edge ") for s in suffixed) == want


def test_report_says_matplotlib_drew_the_cells_and_how_to_get_graphviz(tmp_path, monkeypatch,
                                                                       caplog):
    monkeypatch.setattr(cell_graph.shutil, "which", lambda name: None)
    caplog.set_level("INFO", logger="prdarts_jax")
    text, _ = check_html(write_report(copy_run(tmp_path)))
    note = ("Cells drawn by matplotlib: Graphviz `dot` is not on PATH; Graphviz would draw "
            "them if installed (apt install graphviz).")
    assert note in caplog.text
    assert note in summary_section(text)


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz dot is not installed")
def test_report_says_graphviz_drew_the_cells(full_report, caplog):
    workdir, html_path = full_report
    text, _ = check_html(html_path)
    assert f"Cells drawn by Graphviz ({shutil.which('dot')})." in summary_section(text)
    svg = open(os.path.join(workdir, "report", "cell_search_reduce.svg")).read()
    assert "stroke-dasharray" in svg and " /2" in svg


def test_paper_figure_is_one_column_wide_and_legible():
    fig = paper_figure(load_run(QUICK_RUN).stats)
    fig.canvas.draw()
    assert fig.get_figwidth() == 3.5
    texts = fig.findobj(Text)
    assert any(t.get_text() == "similarity" for t in texts)
    small = [(t.get_text(), t.get_fontsize()) for t in texts if t.get_fontsize() < 8]
    assert not small


def test_paper_figure_files(tmp_path):
    files = plot_paper(load_run(QUICK_RUN).stats, str(tmp_path / "paper_figure"))
    assert [os.path.basename(f) for f in files] == ["paper_figure.png", "paper_figure.pdf",
                                                    "paper_figure.svg"]
    assert all(os.path.getsize(f) > 1000 for f in files)
