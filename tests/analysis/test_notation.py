"""One op notation wherever a user reads an op: genotype text, cell drawings (dot and
matplotlib), pool tables and the report page all write `op.notation`, and nothing else."""

import html
import os
import re

import pytest

from prdarts_jax.analysis import cell_graph
from prdarts_jax.analysis.report import load_run, write_report
from prdarts_jax.analysis.report_html import pool_table
from prdarts_jax.space.genotypes import Genotype, parse_cell, save_genotype
from prdarts_jax.space.opspec import NOTATION_LEGEND, OpSpec
from tests.analysis.reports import check_html, copy_run, summary_section

OP = re.compile(r"conv\(k\d+,\[[\d,]*\](?:,dil=\d+)?\)|\bmaxpool3\b|\bavgpool3\b|\bskip\b")
"""An op in the notation (a concrete one: the legend's `conv(kK,[m1,...])` does not match)."""
OTHER_FORMS = re.compile(r"Conv\(|Pool\(|Skip\(\)|\b\d+x\d+(?: d\d+)? \[|\b(?:max|avg) pool\b"
                         r"|conv_k\d")
"""The display forms there were before, and the canonical (JSON) form."""

MIXED = Genotype(
    parse_cell("conv(k3,[1,1],dil=2)@0 conv(k5,[2,1])@1 | conv(k3,[],dil=2)@1 skip@2 | "
               "avgpool3@0 conv(k7,[1])@3 | conv(k1,[1,1,1])@2 maxpool3@4"),
    parse_cell("conv(k3,[1,1],dil=2)@0 skip@1 | maxpool3@0 conv(k5,[],dil=2)@2 | "
               "conv(k3,[2])@1 avgpool3@3 | skip@0 conv(k3,[1,1])@4"))
"""Dilated and multi-layer convs, pools and skips."""


def _ops(text):
    return set(OP.findall(text))


def _dot_ops(genotype):
    return _ops("".join(cell_graph.to_dot(genotype, c) for c in ("normal", "reduce")))


def _matplotlib_ops(genotype):
    labels = [t.get_text() for c in ("normal", "reduce")
              for t in cell_graph.cell_figure(genotype, c).axes[0].texts
              if (t.get_gid() or "").startswith("edge-label")]
    assert len(labels) == 16
    return _ops(" ".join(labels))


def _starred_final_ops(table_html):
    """The ops of the pool table's final column on edges the genotype uses (★)."""
    finals = re.findall(r"<td>([^<]*)</td></tr>", table_html)
    return _ops(" ".join(html.unescape(f) for f in finals if "★" in f))


def _page_without_legend(text):
    legend = html.escape(NOTATION_LEGEND)
    assert text.count(legend) == 1, "the notation legend appears once"
    return text.replace(legend, "")


def _assert_only_notation(text):
    assert not OTHER_FORMS.findall(text), OTHER_FORMS.findall(text)[:5]
    for token in _ops(text):
        assert OpSpec.parse(token).notation == token


def test_the_quick_runs_genotype_reads_the_same_everywhere(full_report):
    """The quick run's cells hold dilated and two-layer convs; the same op strings appear in
    genotype.txt's form, the dot source, the matplotlib drawing, the pool tables' chosen final
    ops and the report's summary, and the page holds no other form."""
    workdir, html_path = full_report
    run = load_run(workdir)
    g = run.genotype
    expected = _ops(g.describe())
    assert {"conv(k3,[],dil=2)", "conv(k5,[1])"} <= expected
    assert _dot_ops(g) == expected
    assert _matplotlib_ops(g) == expected
    tables = "".join(pool_table(run, c) for c in ("normal", "reduce"))
    assert _starred_final_ops(tables) == expected
    _assert_only_notation(tables)
    text = _page_without_legend(check_html(html_path)[0])
    assert _ops(summary_section(text)) == expected
    _assert_only_notation(text)


@pytest.mark.parametrize("dot", [True, False], ids=["graphviz-if-installed", "matplotlib"])
def test_a_genotype_with_dilated_multi_layer_convs(tmp_path, monkeypatch, dot):
    if not dot:
        monkeypatch.setattr(cell_graph.shutil, "which", lambda name: None)
    workdir = copy_run(tmp_path)
    save_genotype(MIXED, os.path.join(workdir, "genotype.json"))
    expected = _ops(MIXED.describe())
    assert {"conv(k3,[1,1],dil=2)", "conv(k5,[2,1])", "conv(k1,[1,1,1])"} <= expected
    assert _dot_ops(MIXED) == expected == _matplotlib_ops(MIXED)
    text = _page_without_legend(check_html(write_report(workdir))[0])
    assert _ops(summary_section(text)) == expected
    _assert_only_notation(text)
    svg = open(os.path.join(workdir, "report", "cell_search_normal.svg")).read()
    assert "conv(k3,[1,1],dil=2)" in svg
