import json
import os
import shutil
import subprocess
import sys

import pytest
from PIL import Image

from prdarts_jax.analysis import cell_graph
from prdarts_jax.analysis.report import load_run, write_report
from prdarts_jax.search.statistics import cycle_statistics
from prdarts_jax.space.genotypes import PUBLISHED
from tests.analysis.reports import check_html, copy_run

FIGURES = ["search_statistics", "pools_normal", "pools_reduce"]


def _check_png(path):
    assert os.path.getsize(path) > 0
    with Image.open(path) as im:
        assert im.size[0] > 200 and im.size[1] > 200


def test_report_of_a_finished_search(full_report):
    workdir, html_path = full_report
    out = os.path.join(workdir, "report")
    assert html_path == os.path.join(out, "report.html")
    for stem in FIGURES + ["cell_search_normal", "cell_search_reduce", "cell_DL2_normal",
                           "cell_DL2_reduce"]:
        _check_png(os.path.join(out, f"{stem}.png"))
        assert os.path.getsize(os.path.join(out, f"{stem}.svg")) > 0
    text, refs = check_html(html_path)
    for stem in FIGURES + ["cell_search_normal", "cell_DL2_reduce", "paper_figure"]:
        assert f"{stem}.png" in refs
    assert "paper_figure.pdf" in refs and "paper_figure.svg" in refs
    assert "finished (genotype.json written)" in text
    assert "recomputed" in text
    assert PUBLISHED["DL2"].describe().splitlines()[0] in text


def test_tensorboard_event_file(full_report):
    pytest.importorskip("tensorboardX")
    workdir, _ = full_report
    events = os.listdir(os.path.join(workdir, "report", "tensorboard"))
    assert len(events) == 1 and events[0].startswith("events.out.tfevents")


def test_report_scalars_only_where_the_search_wrote_none_live(tmp_path):
    pytest.importorskip("tensorboardX")
    from tests.helpers import tensorboard_scalars
    old = copy_run(tmp_path / "old")          # a search from before the live events
    write_report(old, out=str(tmp_path / "old_report"))
    scalars = tensorboard_scalars(tmp_path / "old_report" / "tensorboard")
    assert sorted(scalars["epoch/val_acc"]) == list(range(10))
    assert sorted(scalars["cycle_normal/similarity"]) == [1, 2, 3, 4]
    live = copy_run(tmp_path / "live")
    os.makedirs(os.path.join(live, "tensorboard"))
    write_report(live, out=str(tmp_path / "live_report"))
    assert tensorboard_scalars(tmp_path / "live_report" / "tensorboard") == {}


def test_report_without_tensorboardx_says_so(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    monkeypatch.setattr(cell_graph.shutil, "which", lambda name: None)
    workdir = copy_run(tmp_path, drop_last=9, genotype=False)   # cycle 1 and an epoch of 2
    os.remove(os.path.join(workdir, "config.json"))
    run = load_run(workdir)
    assert run.schedule == {1: {"epochs": 3, "grace": 1, "keep": 4, "morphs": 2},
                            2: {"epochs": None, "grace": None, "keep": None, "morphs": None}}
    text, _ = check_html(write_report(workdir, out=str(tmp_path / "out")))
    assert "TensorBoard: skipped" in text
    assert not os.path.exists(tmp_path / "out" / "tensorboard")


def test_report_of_a_partial_search_without_dot(tmp_path, monkeypatch):
    """A run stopped in cycle 4: no genotype.json, no final cycle record; cells drawn by the
    matplotlib fallback from the α of cycle 3."""
    monkeypatch.setattr(cell_graph.shutil, "which", lambda name: None)
    workdir = copy_run(tmp_path, drop_last=2, genotype=False)
    run = load_run(workdir)
    assert not run.finished and max(run.reports) == 3 and sorted(run.stats) == [1, 2, 3, 4]
    html_path = write_report(workdir)
    out = os.path.dirname(html_path)
    for stem in FIGURES + ["cell_provisional_normal", "cell_provisional_reduce"]:
        _check_png(os.path.join(out, f"{stem}.png"))
    assert not os.path.exists(os.path.join(out, "cell_search_normal.png"))
    text, _ = check_html(html_path)
    assert "not finished: last record cycle 4 of 4, epoch 0" in text
    assert "provisional genotype after cycle 3" in text


def test_report_before_the_first_cycle_ends(tmp_path):
    workdir = copy_run(tmp_path, drop_last=12, genotype=False)   # two epochs of cycle 1
    run = load_run(workdir)
    assert len(run.epochs) == 2 and not run.cycles and run.provisional_genotype() is None
    text, refs = check_html(write_report(workdir))
    assert "No genotype yet" in text and "search_statistics.png" in refs


def test_matplotlib_cell_fallback(tmp_path, monkeypatch):
    monkeypatch.setattr(cell_graph.shutil, "which", lambda name: None)
    files = cell_graph.draw_cell(PUBLISHED["UR"], "normal", str(tmp_path / "ur"), "UR")
    assert files == [str(tmp_path / "ur.png"), str(tmp_path / "ur.svg")]
    _check_png(files[0])
    assert "conv(k3,[1,1,1])" in open(files[1]).read()
    assert "conv(k3,[1,1,1])" in (tmp_path / "ur.dot").read_text()


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz dot is not installed")
def test_graphviz_cells(tmp_path):
    files = cell_graph.draw_cell(PUBLISHED["DL2"], "reduce", str(tmp_path / "dl2"), "DL2")
    _check_png(files[0])
    assert "maxpool3 /2" in open(files[1]).read()


def test_logged_cycle_stats_take_precedence(tmp_path):
    workdir = copy_run(tmp_path)
    run = load_run(workdir)
    logged = cycle_statistics(run.pools[2], run.reports[1], settings={"epochs": 3})
    logged["normal"]["similarity"] = 0.123
    with open(os.path.join(workdir, "metrics.jsonl"), "a") as f:
        f.write(json.dumps({"type": "cycle_stats", "cycle": 2, **logged}) + "\n")
    again = load_run(workdir)
    assert again.stats[2]["normal"]["similarity"] == 0.123
    assert again.stats[1] == run.stats[1] and again.logged_stats == {2}


def test_repeated_epochs_keep_the_last_record(tmp_path):
    workdir = copy_run(tmp_path)
    first = json.loads(open(os.path.join(workdir, "metrics.jsonl")).readline())
    with open(os.path.join(workdir, "metrics.jsonl"), "a") as f:
        f.write(json.dumps({**first, "val_acc": 0.5}) + "\n")
    run = load_run(workdir)
    assert len(run.epochs) == 10 and run.epochs[0]["val_acc"] == 0.5


def test_missing_metrics_is_a_one_line_error(tmp_path):
    with pytest.raises(ValueError, match=r"metrics.jsonl not found.*prdarts_jax.search"):
        load_run(str(tmp_path))
    proc = subprocess.run([sys.executable, "-m", "prdarts_jax.report", "--workdir",
                           str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1
    assert os.path.join(str(tmp_path), "metrics.jsonl") in proc.stderr
