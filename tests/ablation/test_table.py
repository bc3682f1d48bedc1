"""The table from fabricated finished workdirs (grid's FakeRunner), resume that skips finished
work, and one-line errors for bad variants and overrides on the command line."""

import json
import os
import shutil

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


def test_resume_skips_finished_work_and_reruns_the_rest(tmp_path):
    _, jobs = _ablation(tmp_path)
    fake_search(jobs[0].workdir, "DL", 0)                       # finished before
    fake_search(jobs[1].workdir, "DL", 1, finished=False)       # killed mid-search
    fake = _runner()

    def runner(argv):   # the fake search starts over where the real one would resume
        shutil.rmtree(argv[argv.index("--workdir") + 1], ignore_errors=True)
        return fake(argv)

    run_local(jobs, "python", runner=runner, out=lambda _: None)
    ran = [c[c.index("--workdir") + 1] for c in fake.commands]
    assert jobs[0].workdir not in ran and ran[0] == jobs[1].workdir
    assert len(ran) == len(jobs) - 1
    again = _runner()
    result = run_local(jobs, "python", runner=again, out=lambda _: None)
    assert again.commands == [] and len(result.finished_before) == len(jobs)


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
    (["--set", "channels"], "--set 'channels' must be key=value")])
def test_bad_variants_and_overrides_are_one_line_errors(tmp_path, capsys, extra, message):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--config", "configs/quick.py", "--workdir", str(tmp_path / "a"), *extra])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and message in err, err
    assert not os.path.exists(tmp_path / "a")
