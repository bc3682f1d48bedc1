"""The report's opening summary, field by field against the quick run's own files."""

import html
import json
import os

import pytest

from prdarts_jax.analysis.report import load_run
from prdarts_jax.analysis.summary import format_duration, summary
from prdarts_jax.space.genotypes import load_genotype
from tests.analysis.reports import QUICK_RUN, check_html, copy_run, summary_section


def _epochs(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [r for r in map(json.loads, f) if r["type"] == "epoch"]


def test_summary_of_the_finished_quick_run():
    epochs = _epochs(QUICK_RUN)
    s = summary(load_run(QUICK_RUN), count_params=None)
    assert s["finished"] and s["genotype_source"] == "genotype.json"
    assert s["genotype"] == load_genotype(os.path.join(QUICK_RUN, "genotype.json")).describe()
    assert s["val_acc"] == epochs[-1]["val_acc"] == 0.8053
    assert s["val_acc_at"] == [4, 1]
    assert s["search_seconds"] == pytest.approx(sum(r["seconds"] for r in epochs))
    assert s["compile_seconds"] is None and s["compile_share"] is None   # not logged then
    assert (s["epochs"], s["cycles_done"], s["cycles_planned"]) == (10, 4, 4)
    assert s["config"] == {"dataset": "digits", "space": "DL", "C": 8, "layers": 5, "seed": 0,
                           "batch_size": 32, "schedule": "4 cycles: epochs 3,3,2,2; "
                           "grace 1,1,0,0; morphs 2,2,0,0; keep 4,4,2,1"}
    assert s["retrain_command"] == (   # the retraining config of the search's dataset
        "python -m prdarts_jax.train --config configs/train_digits.py "
        f"--config.genotype={QUICK_RUN}/genotype.json --workdir {QUICK_RUN}_train")
    assert s["params"] is None and "retrain_note" not in s
    json.dumps(s)


def test_compile_share_is_compile_seconds_over_seconds(tmp_path):
    workdir = copy_run(tmp_path)
    path = os.path.join(workdir, "metrics.jsonl")
    with open(path) as f:
        records = [json.loads(line) for line in f]
    for n, r in enumerate(records):
        if r["type"] == "epoch":
            r["compile_seconds"] = r["seconds"] * (0.5 if n == 0 else 0.1)
    with open(path, "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in records)
    epochs = _epochs(workdir)
    s = summary(load_run(workdir), count_params=None)
    total = sum(r["seconds"] for r in epochs)
    assert s["compile_seconds"] == pytest.approx(sum(r["compile_seconds"] for r in epochs))
    assert s["compile_share"] == pytest.approx(s["compile_seconds"] / total)


def test_params_are_what_train_count_params_reports():
    """`python -m prdarts_jax.train --config configs/train_cifar10.py --count_params` counts
    with `count_params_of` and `cost_of`; the summary's counts of the same genotype.json are
    the same."""
    from configs import train_cifar10
    from prdarts_jax.train.loop import cost_of, count_params_of

    config = train_cifar10.get_config()
    config.genotype = os.path.join(QUICK_RUN, "genotype.json")
    s = summary(load_run(QUICK_RUN))
    assert s["params"] == count_params_of(config) == 2_938_942
    assert s["madds"] == cost_of(config).madds > 0


def test_an_unfinished_search_says_its_genotype_is_provisional(tmp_path):
    workdir = copy_run(tmp_path, drop_last=2, genotype=False)   # stopped in cycle 4
    s = summary(load_run(workdir), count_params=lambda g: 123)
    assert not s["finished"] and s["params"] == 123
    assert s["genotype_source"] == "provisional genotype after cycle 3"
    assert "provisional" in s["retrain_note"] and "no genotype.json yet" in s["retrain_note"]
    assert s["val_acc"] == _epochs(workdir)[-1]["val_acc"] and s["val_acc_at"] == [4, 0]
    before = summary(load_run(copy_run(tmp_path, "early", drop_last=12, genotype=False)))
    assert before["genotype"] is None and before["params"] is None
    assert "No genotype yet" in before["retrain_note"]


def test_the_report_opens_with_the_summary(full_report):
    workdir, html_path = full_report
    text, _ = check_html(html_path)
    s = summary(load_run(workdir))
    top = summary_section(text)
    assert text.index(top) < text.index("Search statistics") < text.index("Other cells")
    assert text.index("<section class='summary'>") < text.index("<h2>")
    for shown in (f"{s['val_acc']:.1%}", f"{s['params'] / 1e6:.2f} M",
                  format_duration(s["search_seconds"]), "compile share: not logged",
                  html.escape(s["retrain_command"]), "digits · space DL · C=8 · 5 cells",
                  'src="cell_search_normal.png"', 'src="cell_search_reduce.png"'):
        assert shown in top, shown
    assert 'src="cell_DL2_normal.png"' not in top


def test_format_duration():
    assert [format_duration(s) for s in (42.4, 362, 11_100)] == ["42 s", "6 min 2 s",
                                                                "3 h 05 min"]


def test_the_finished_record_gives_the_whole_search_time(tmp_path):
    workdir = copy_run(tmp_path)
    with open(os.path.join(workdir, "metrics.jsonl"), "a") as f:
        f.write(json.dumps({"type": "finished", "cycles": 4, "epochs": 10, "val_acc": 0.8053,
                            "seconds": 300.0, "compile_seconds": 180.0}) + "\n")
    s = summary(load_run(workdir), count_params=None)
    assert (s["search_seconds"], s["compile_seconds"]) == (300.0, 180.0)
    assert s["compile_share"] == pytest.approx(0.6)
