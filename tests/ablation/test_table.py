"""The table from fabricated finished workdirs (grid's FakeRunner), partial ablations, resume of
an ablation workdir that launches only the unfinished jobs, and one-line errors (before any job
starts) for bad variants and overrides of the searches and the retrainings."""

import json
import os

import pytest

from prdarts_jax.ablation import cli
from prdarts_jax.ablation.report import DATA, FIGURE, TABLE, write_report
from prdarts_jax.ablation.table import COLUMNS
from prdarts_jax.grid.local import run_local
from prdarts_jax.models.cost import network_cost
from prdarts_jax.space.genotypes import load_genotype
from tests.ablation.test_plan import (
    _in_repo,  # noqa: F401  (autouse fixture)
    spec,
)
from tests.helpers.fake_runs import FakeRunner, fake_search, search_seconds

ERRORS = {"dl_s0": 0.05, "dl_s1": 0.07}


def _runner():
    return FakeRunner(error_of=lambda w: ERRORS[w.split(os.sep)[-3]])


def _ablation(tmp_path):
    s = spec(root=str(tmp_path), train_config="configs/train_digits.py")
    from prdarts_jax.ablation.plan import build_plan
    return s, build_plan(s)


def test_table_of_finished_runs_has_every_column_and_the_seed_spread(tmp_path):
    s, jobs = _ablation(tmp_path)
    assert run_local(jobs, "python", runner=_runner(), out=lambda _: None).exit_code == 0
    printed = []
    table = write_report(s.root, jobs, s.variants, s.seeds, out=printed.append)
    lines = table.splitlines()
    assert lines[0] == "| " + " | ".join(COLUMNS) + " |"
    row = lines[2].split(" | ")
    assert row[0] == "| `uniform`" and row[1] == "0,1"
    assert row[2] == "6 min 21 s ± 0 s"            # Σ of the fixture's epoch seconds
    assert row[3] == "—"                    # the fixture predates compile_seconds
    assert row[4] == "0.8053 ± 0.0000"      # the quick run's last α-half val_acc, both seeds
    assert row[5] == "0.9400 ± 0.0141"      # 1 − (0.05, 0.07): mean ± sample std
    assert row[7] == "343 k ± 0"            # MAdds (models/cost.py) at train_digits' size
    with open(os.path.join(s.root, DATA)) as f:
        data = json.load(f)
    uniform = data["rows"][0]
    assert uniform["search_seconds"]["mean"] == pytest.approx(search_seconds())
    assert uniform["params"]["n"] == 2 and uniform["params"]["std"] == 0   # same genotype
    cells = load_genotype(os.path.join(jobs[0].workdir, "genotype.json"))
    cost = network_cost(cells, 10, 8, 3, (8, 8, 1))   # configs/train_digits.py: C=8, 3 cells
    assert uniform["madds"]["mean"] == cost.madds and uniform["params"]["mean"] == cost.params
    assert data["variants"]["weighted+skips"]["overrides"] == {
        "morph_selection": "weighted", "genotype_max_skips": "2"}
    assert os.path.getsize(os.path.join(s.root, FIGURE)) > 0
    with open(os.path.join(s.root, TABLE)) as f:
        assert f.read() == table + "\n"


def _main(args, runner, monkeypatch) -> int:
    """cli.main with the grid's local runner running `runner` instead of processes."""
    import functools

    from prdarts_jax.grid import local
    monkeypatch.setattr(local, "run_local", functools.partial(local.run_local, runner=runner))
    with pytest.raises(SystemExit) as exit_:
        cli.main(args)
    return exit_.value.code


def test_second_run_over_an_ablation_workdir_launches_only_the_unfinished_jobs(
        tmp_path, monkeypatch, capsys):
    root = str(tmp_path / "ablate")
    args = ["--config", "configs/quick.py", "--workdir", root, "--variants", "uniform,skips",
            "--seeds", "0,1", "--train_config", "configs/train_digits.py", "--python", "py"]
    failed = os.path.join(root, "skips", "search", "dl", "seed_1")
    first = FakeRunner(error_of=lambda w: ERRORS[w.split(os.sep)[-3]], fail=[failed])
    assert _main(args, first, monkeypatch) == 1          # one search failed, its retraining
    assert len(first.commands) == 7                      # blocked: 8 jobs, 7 launched
    assert "| `skips` | 0 of 0,1 |" in capsys.readouterr().out
    again = _runner()
    assert _main(args, again, monkeypatch) == 0
    ran = [c[c.index("--workdir") + 1] for c in again.commands]
    assert ran == [failed, os.path.join(root, "skips", "train", "dl_s1", "digits", "seed_0")]
    out = capsys.readouterr().out
    assert out.count("finished before, skipped") == 6 and "| `skips` | 0,1 |" in out


def test_madds_come_from_results_json_and_are_counted_for_older_ones(tmp_path):
    s, jobs = _ablation(tmp_path)
    run_local(jobs, "python", runner=_runner(), out=lambda _: None)
    trains = [j for j in jobs if j.stage == "train"]
    for job, madds in zip(trains, (1000, None)):    # uniform's two seeds
        with open(job.done_file) as f:
            results = json.load(f)
        if madds is None:
            del results["madds"]                       # written before results.json had it
        else:
            results["madds"] = madds
        with open(job.done_file, "w") as f:
            json.dump(results, f)
    write_report(s.root, jobs, s.variants, s.seeds, out=lambda _: None)
    with open(os.path.join(s.root, DATA)) as f:
        uniform = json.load(f)["seeds"]["uniform"]
    counted = network_cost(load_genotype(os.path.join(jobs[1].workdir, "genotype.json")),
                           10, 8, 3, (8, 8, 1)).madds
    assert [r["madds"] for r in uniform] == [1000, counted]


def test_unfinished_searches_stay_out_of_the_search_columns(tmp_path):
    s, jobs = _ablation(tmp_path)
    fake_search(jobs[0].workdir, "DL", 0)
    fake_search(jobs[1].workdir, "DL", 1, finished=False)   # killed mid-search
    table = write_report(s.root, jobs, s.variants, s.seeds, out=lambda _: None)
    row = table.splitlines()[2].split(" | ")
    assert row[1] == "none of 0,1"
    assert row[2] == "6 min 21 s" and row[4] == "0.8053"   # seed 0 alone: no ± spread
    with open(os.path.join(s.root, DATA)) as f:
        data = json.load(f)
    assert data["rows"][0]["search_seconds"]["n"] == 1 and data["rows"][0]["val_acc"]["n"] == 1
    assert data["seeds"]["uniform"][1]["searched"] is False


def test_partial_ablation_shows_missing_seeds(tmp_path):
    s, jobs = _ablation(tmp_path)
    fake_search(jobs[0].workdir, "DL", 0)
    table = write_report(s.root, jobs, s.variants, s.seeds, out=lambda _: None)
    rows = [line.split(" | ") for line in table.splitlines()[2:]]
    assert rows[0][1] == "none of 0,1" and rows[0][5] == "—" and rows[0][4] == "0.8053"
    assert rows[1][1] == "none of 0,1" and rows[1][2] == "—"


@pytest.mark.parametrize("extra, message", [
    (["--variants", "uniform,gumble"], "unknown variant 'gumble'; did you mean 'gumbel'?"),
    (["--set", "chanels=4"], ("--set: the search config has no field 'chanels'; did you mean "
                              "channels?")),
    (["--set", "channels=four"], "--set: --config.channels=four: invalid literal"),
    (["--variants", "schedule.tau=(1.0,)"], ("variant 'schedule.tau=(1.0,)': "
                                             "config.schedule.tau has 1 entries for 4 cycles")),
    (["--set", "channels"], "--set 'channels' must be key=value"),
    (["--set", "seed=3"], "--set seed=3: seed is set per job by the ablation (from --seeds)"),
    (["--set", "space=DR"], ("--set space=DR: space is set per job by the ablation (from "
                             "--config)")),
    (["--variants", "dataset=cifar10"], "dataset is set per job by the ablation"),
    (["--train_set", "seed=1"], ("--train_set seed=1: seed is set per job by the ablation "
                                 "(from --train_seed)")),
    (["--train_set", "dataset=cifar10"], "--train_set dataset=cifar10: dataset is set per job"),
    (["--train_set", "genotype=DL1"], "--train_set genotype=DL1: genotype is set per job"),
    (["--train_set", "epochs=0"], "--train_set: config.epochs=0 must be >= 1"),
    (["--train_set", "epoch=3"], ("--train_set: the train config has no field 'epoch'; did "
                                  "you mean epochs?")),
    (["--train_set", "lr=fast"], "--train_set: --config.lr=fast: could not convert"),
    (["--table", "--dry_run"], "--dry_run does not go with --table"),
    (["--variants", "lr_max=1e+0+gumble"],   # an unknown name after '+' stays in the value
     "variant 'lr_max=1e+0+gumble': --config.lr_max=1e+0+gumble: could not convert")])
def test_bad_variants_and_overrides_are_one_line_errors(tmp_path, capsys, extra, message):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--config", "configs/quick.py", "--workdir", str(tmp_path / "a"), *extra])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and message in err, err
    assert not os.path.exists(tmp_path / "a")
