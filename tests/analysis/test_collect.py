"""The collector: the Table 3 layout from fabricated-but-valid workdirs (searches copied from the
real quick run, retrainings whose results.json training.summarize wrote), skipped workdirs with
one-line reasons, and a real search workdir from the test session's tiny search."""

import csv
import io
import json
import os

import pytest

from prdarts_jax import collect as collect_cli
from prdarts_jax.analysis.collect import collect
from prdarts_jax.analysis.results_table import build_table
from prdarts_jax.analysis.workdir_scan import canonical_cells, scan
from prdarts_jax.grid.jobs import GridSpec, build_grid
from prdarts_jax.grid.local import run_local
from prdarts_jax.space.genotypes import PUBLISHED, load_genotype
from tests.helpers import ROOT
from tests.helpers.fake_runs import (
    QUICK_RUN,
    FakeRunner,
    _params,
    fake_search,
    fake_training,
    search_seconds,
)

HOURS = f"{search_seconds() / 3600:.3g}"


def _m(genotype, dataset="cifar10"):
    """Params in millions as the table prints them, from the network itself."""
    return f"{_params(json.dumps(load_genotype(genotype).to_json()), dataset) / 1e6:.3g}"


def _g(genotype, dataset="cifar10"):
    """MAdds in G as the table prints them, from the analytic counter at the same size."""
    from prdarts_jax.data import dataset_info
    from prdarts_jax.models.cost import network_cost
    from tests.helpers.fake_runs import train_digits
    config, info = train_digits.get_config(), dataset_info(dataset)
    madds = network_cost(load_genotype(genotype), info.num_classes, config.channels,
                         config.layers, info.image_shape).madds / 1e9
    return f"{madds:.2f}" if madds >= 0.1 else f"{madds:.3g}"


def _set_genotype_value(workdir, value):
    path = os.path.join(workdir, "config.json")
    with open(path) as f:
        config = json.load(f)
    config["genotype"] = value
    with open(path, "w") as f:
        json.dump(config, f)


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch):
    monkeypatch.chdir(ROOT)


@pytest.fixture
def grid_root(tmp_path):
    """A grid root as `--root runs/grid` leaves it, moved into tmp_path: the retrainings name
    their genotype by the relative path the grid passed."""
    root = tmp_path / "runs" / "grid"
    dl0 = fake_search(str(root / "search/dl/seed_0"), "DL", 0)
    fake_search(str(root / "search/dl/seed_1"), "DL", 1)
    dr0 = fake_search(str(root / "search/dr/seed_0"), "DR", 0, genotype=PUBLISHED["DR"])
    fake_search(str(root / "search/dr/seed_1"), "DR", 1, finished=False)

    def train(name, search, dataset, seed, error, **kw):
        workdir = fake_training(str(root / "train" / name / dataset / f"seed_{seed}"),
                                os.path.join(search, "genotype.json"), dataset, seed, error,
                                **kw)
        _set_genotype_value(workdir, os.path.relpath(
            os.path.join(search, "genotype.json"), str(tmp_path)))
        return workdir

    train("dl_s0", dl0, "cifar10", 0, 0.03)
    train("dl_s0", dl0, "cifar10", 1, 0.05)
    train("dl_s0", dl0, "cifar100", 0, 0.20)
    dl1 = str(root / "search/dl/seed_1")
    train("dl_s1", dl1, "cifar10", 0, 0.06)
    train("dl_s1", dl1, "cifar10", 1, 0.01, finished=False)
    broken = train("dl_s1", dl1, "cifar100", 0, 0.01)
    with open(os.path.join(broken, "results.json"), "w") as f:
        f.write('{"params": ')
    moved = train("dr_s0", dr0, "cifar10", 0, 0.025)
    _set_genotype_value(moved, "/gone/genotype.json")     # found by its cells instead
    fake_training(str(root / "train/DL2/cifar10/seed_0"), "DL2", "cifar10", 0, 0.027)
    fake_training(str(root / "train/DL2/cifar10/seed_1"), "DL2", "cifar10", 1, 0.023)
    os.makedirs(root / "train/UR/cifar10/seed_0")         # never started
    return root


def test_markdown_table_in_the_layout_of_table_3(grid_root):
    text, skipped = collect([str(grid_root)])
    dl = os.path.join(QUICK_RUN, "genotype.json")
    assert text.splitlines()[:7] == [
        "| architecture | CIFAR-10 test error (%) | CIFAR-100 test error (%) | "
        "params (M, CIFAR-10) | MAdds (G, CIFAR-10) | "
        "search cost (h × 1 device: device count not recorded) | search space |",
        "|---|---:|---:|---:|---:|---:|---|",
        f"| PR-DARTS DL (search seed 0, on digits) | 4.00 ± 1.41 (2) | 20.00 (1) | {_m(dl)} | "
        f"{_g(dl)} | {HOURS} | DL |",
        f"| PR-DARTS DL (search seed 1, on digits) | 6.00 (1) | — | {_m(dl)} | {_g(dl)} | "
        f"{HOURS} | DL |",
        f"| PR-DARTS DL: mean of 2 searches | 5.00 ± 1.41 (3) | 20.00 (1) | {_m(dl)} ± 0 | "
        f"{_g(dl)} ± 0 | {HOURS} ± 0 | DL |",
        f"| PR-DARTS DR (search seed 0, on digits) | 2.50 (1) | — | {_m('DR')} | {_g('DR')} | "
        f"{HOURS} | DR |",
        f"| DL2 (published cell) | 2.50 ± 0.28 (2) | — | {_m('DL2')} | {_g('DL2')} | — | DL |",
    ]
    assert text.splitlines()[7] == ""
    reasons = {os.path.relpath(line.split(": ", 1)[0][len("skipped "):], grid_root):
               line.split(": ", 1)[1] for line in skipped}
    assert reasons.pop("search/dr/seed_1") == "no genotype.json (the search has not finished)"
    assert reasons.pop("train/dl_s1/cifar10/seed_1") == (
        "no results.json (the retraining has not finished)")
    assert reasons.pop("train/dl_s1/cifar100/seed_0").startswith(
        "results.json is not valid JSON (")
    assert reasons.pop("train/UR/cifar10/seed_0") == (
        "no config.json (not started, or failed at the start)")
    assert not reasons
    assert all("\n" not in line for line in skipped)


def test_csv_rows_hold_plain_numbers(grid_root):
    text, _ = collect([str(grid_root)], fmt="csv", unit="days")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["architecture"] for r in rows] == [
        "PR-DARTS DL (search seed 0, on digits)", "PR-DARTS DL (search seed 1, on digits)",
        "PR-DARTS DL: mean of 2 searches", "PR-DARTS DR (search seed 0, on digits)",
        "DL2 (published cell)"]
    first = rows[0]
    assert (first["kind"], first["search_space"], first["search_seed"]) == ("search", "DL", "0")
    assert float(first["cifar10_test_error_pct"]) == pytest.approx(4.0)
    assert float(first["cifar10_test_error_std"]) == pytest.approx(1.41421, rel=1e-4)
    assert first["cifar10_runs"] == "2" and first["cifar100_runs"] == "1"
    assert float(first["search_wall_days"]) == pytest.approx(search_seconds() / 86400,
                                                             rel=1e-5)
    assert rows[1]["cifar100_test_error_pct"] == "" and rows[4]["search_wall_days"] == ""
    assert float(first["madds_g"]) == pytest.approx(float(_g(os.path.join(
        QUICK_RUN, "genotype.json"))), rel=1e-2)


def test_cost_counts_devices_where_the_search_recorded_them(tmp_path):
    workdir = fake_search(str(tmp_path / "search/dl/seed_0"))
    with open(os.path.join(workdir, "config.json")) as f:
        config = json.load(f)
    with open(os.path.join(workdir, "config.json"), "w") as f:
        json.dump({**config, "num_devices": 4}, f)
    table = build_table(scan([str(tmp_path)]))
    assert table.devices_recorded
    assert table.rows[0].cost.mean == pytest.approx(4 * search_seconds() / 3600)
    text, _ = collect([str(tmp_path)])
    assert "| search cost (GPU-h) |" in text.splitlines()[0]


def test_paper_rows_for_comparison(tmp_path):
    fake_training(str(tmp_path / "DL2/cifar100/seed_0"), "DL2", "cifar100", 0, 0.16)
    text, skipped = collect([str(tmp_path)], with_paper=True)
    lines = text.splitlines()
    assert lines[0].startswith("| architecture | CIFAR-10 test error (%) | CIFAR-100 test "
                               "error (%) | params (M, CIFAR-10) |")
    assert lines[2] == "| DL2 (published cell) | — | 16.00 (1) | — | — | — | DL |"
    assert lines[3] == ("| paper: PR-DARTS DL1 | 2.74 ± 0.12 (3) | 17.37 ± 0.14 (3) | 3.20 | — | "
                        "19.7 | DL |")
    assert lines[6] == "| paper: PR-DARTS UR | 3.79 ± 0.24 (3) | — | 5.40 | — | 26.4 | UR |"
    assert skipped == []


def test_cli_errors_and_empty_roots(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        collect_cli.main([str(tmp_path / "none")])
    assert exit_.value.code == 2
    assert capsys.readouterr().err == (f"error: {tmp_path}/none is not a directory: pass the "
                                       "--root of a grid (or any directory holding workdirs)\n")
    collect_cli.main([str(tmp_path), "--out", str(tmp_path / "t.md")])
    assert capsys.readouterr().err == f"no finished search or retraining under {tmp_path}\n"
    assert (tmp_path / "t.md").read_text().startswith("| architecture |")


def test_what_the_local_grid_leaves_is_what_the_collector_groups(tmp_path):
    root = str(tmp_path / "grid")
    jobs = build_grid(GridSpec(root=root, spaces=("dl",), search_seeds=(0, 1),
                               train_seeds=(0, 1), datasets=("digits",), published=("DL1",)))
    errors = {"dl_s0": 0.02, "dl_s1": 0.04, "DL1": 0.08}
    runner = FakeRunner(error_of=lambda w: errors[w.split(os.sep)[-3]] + 0.01 * int(w[-1]))
    assert run_local(jobs, "python", runner=runner, out=lambda line: None).exit_code == 0
    text, skipped = collect([root])
    rows = [line.split(" | ")[:2] for line in text.splitlines()[2:6]]
    assert rows == [["| PR-DARTS DL (search seed 0, on digits)", "2.50 ± 0.71 (2)"],
                    ["| PR-DARTS DL (search seed 1, on digits)", "4.50 ± 0.71 (2)"],
                    ["| PR-DARTS DL: mean of 2 searches", "3.50 ± 1.41 (4)"],
                    ["| DL1 (published cell)", "8.50 ± 0.71 (2)"]]
    assert skipped == []


def test_a_real_search_workdir_is_read(straight_search, tmp_path):
    workdir, genotype = straight_search
    (run,) = scan([str(workdir)]).searches
    assert (run.space, run.seed, run.dataset, run.devices) == ("DL", 0, "digits", 1)
    assert run.seconds == pytest.approx(search_seconds(str(workdir)))
    assert run.cells == canonical_cells(genotype.to_json())
    fake_training(str(tmp_path / "t/seed_0"), os.path.join(str(workdir), "genotype.json"),
                  "cifar10", 0, 0.031)
    table = build_table(scan([str(workdir), str(tmp_path)]))
    assert [(r.label, round(r.errors["cifar10"].mean, 6)) for r in table.rows] == [
        ("PR-DARTS DL (search seed 0, on digits)", 3.1)]
