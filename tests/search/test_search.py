"""End to end: the quick search (shrunk further) on digits, the CLI, and config validation."""

import json
import logging
import math
import subprocess
import sys

import numpy as np
import pytest

from configs import dl, dr, ur  # noqa: E402
from prdarts_jax.errors import NonFiniteLossError, SearchInterrupted
from prdarts_jax.runtime.interrupts import FaultHook
from prdarts_jax.runtime.metrics import read_metrics
from prdarts_jax.search.config import ConfigError, base_config, validate
from prdarts_jax.search.cycle import cycle_lr
from prdarts_jax.search.loop import run_search
from prdarts_jax.space.genotypes import load_genotype
from prdarts_jax.space.spaces import PRESETS
from tests.helpers import ROOT, tiny_config, without_timings

# Measured with this config: val accuracy 0.55-0.75 after the last cycle (chance is 0.10).
VAL_ACC_FLOOR = 0.3


@pytest.fixture
def data_dir(digits_dir):
    return digits_dir


@pytest.fixture
def finished(straight_search):
    return straight_search


def test_quick_search_runs_all_cycles_and_writes_a_genotype(finished):
    workdir, genotype = finished
    assert load_genotype(str(workdir / "genotype.json")) == genotype
    final = json.loads((workdir / "final_pools.json").read_text())
    assert all(len(edge["ops"]) == 1 for t in ("normal", "reduce") for edge in final[t])
    records = list(read_metrics(str(workdir / "metrics.jsonl")))
    epochs = [(r["cycle"], r["epoch"]) for r in records if r["type"] == "epoch"]
    assert epochs == [(1, 0), (1, 1), (2, 0), (2, 1), (3, 0), (4, 0)]
    cycles = [r for r in records if r["type"] == "cycle"]
    counts = [{len(e["ops"]) for t in ("normal", "reduce") for e in c["pools"][t]}
              for c in cycles]
    assert counts == [{4}, {4}, {2}, {1}]
    for c in cycles:  # compile seconds, cache hits and misses per cycle: sums over its epochs
        epochs_of = [r for r in records if r["type"] == "epoch" and r["cycle"] == c["cycle"]]
        assert c["compile_seconds"] == pytest.approx(sum(r["compile_seconds"] for r in epochs_of))
        for k in ("cache_hits", "cache_misses"):
            assert c["compile"][k] == sum(r["compile"][k] for r in epochs_of)
        assert sum(c["compile"]["programs"].values()) == pytest.approx(
            sum(sum(r["compile"]["programs"].values()) for r in epochs_of), abs=0.01)
    assert cycles[0]["compile_seconds"] > 0
    assert any(b for c in cycles[:2] for t in ("normal", "reduce")
               for e in c["report"][t] for b in e["added"])
    # the genotype's ops are the ops that survived on its edges
    for t in ("normal", "reduce"):
        survivors = {e["ops"][0] for e in final[t]}
        assert {str(op) for op, _ in getattr(genotype, t)} <= survivors
    assert json.loads((workdir / "config.json").read_text())["dataset"] == "digits"


def test_each_cycle_restarts_the_cosine_at_lr_max(finished):
    workdir, _ = finished
    config = json.loads((workdir / "config.json").read_text())
    epochs = [r for r in read_metrics(str(workdir / "metrics.jsonl")) if r["type"] == "epoch"]
    lo, hi = config["lr_min"], config["lr_max"]
    for cycle, n in enumerate(config["schedule"]["epochs"], start=1):
        lrs = [r["lr"] for r in epochs if r["cycle"] == cycle]
        assert lrs == [lo + (hi - lo) * (1 + math.cos(math.pi * e / n)) / 2 for e in range(n)]
        assert lrs[0] == hi


@pytest.mark.parametrize("schedule, last_of_15, last_of_10", [
    ("pytorch", 0.010163892994496458, 0.010367076127786349), ("reach_min", 0.01, 0.01)])
def test_first_and_last_lr_of_each_paper_cycle(schedule, last_of_15, last_of_10):
    config = base_config()
    config.lr_schedule = schedule
    for cycle, n in enumerate(config.schedule.epochs, start=1):
        assert cycle_lr(config, cycle, 0) == 0.025
        assert cycle_lr(config, cycle, n - 1) == {15: last_of_15, 10: last_of_10}[n]


def test_quick_search_learns(finished):
    workdir, _ = finished
    last = [r for r in read_metrics(str(workdir / "metrics.jsonl")) if r["type"] == "epoch"][-1]
    assert last["val_acc"] > VAL_ACC_FLOOR
    assert np.isfinite(last["train_loss"])
    first = [r for r in read_metrics(str(workdir / "metrics.jsonl")) if r["type"] == "epoch"][0]
    assert 0 < first["compile_seconds"] <= first["seconds"]
    # the first epoch traces and compiles (or loads) the fused gradient program, among others
    assert "grads" in first["compile"]["programs"]
    assert sum(first["compile"]["programs"].values()) == pytest.approx(
        first["compile_seconds"], abs=0.01)
    assert first["memory_bytes"] > 0 and first["memory_source"] == "process_peak_rss"


def test_same_seed_same_genotype(finished, tmp_path, data_dir):
    _, genotype = finished
    assert run_search(tiny_config(data_dir), str(tmp_path / "again")) == genotype


_STORED_RUN = """
import sys
sys.path.insert(0, {root!r})
from prdarts_jax.runtime import compile_cache
compile_cache.enable({cache!r})
from tests.helpers import tiny_config
from prdarts_jax.search.loop import run_search
config = tiny_config({data!r}, max_steps_per_epoch=2)
config.schedule.epochs, config.schedule.grace = (1, 1), (0, 0)
config.schedule.morphs, config.schedule.keep = (1, 0), (2, 1)
run_search(config, {workdir!r})
"""


def test_a_second_process_loads_the_programs_from_the_store_and_computes_the_same(
        tmp_path, data_dir):
    """The first process compiles each cycle's programs and stores them; a second process
    running the same search (as a rerun or a resume does) loads them all from the program
    store, with no tracing, and writes the same records."""
    runs = []
    for name in ("first", "again"):
        code = _STORED_RUN.format(root=ROOT, cache=str(tmp_path / "xla"), data=str(data_dir),
                                  workdir=str(tmp_path / name))
        subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True,
                       timeout=600)
        runs.append(list(read_metrics(str(tmp_path / name / "metrics.jsonl"))))
    first, again = runs
    assert [without_timings(r) for r in again] == [without_timings(r) for r in first]
    counts = {k: [sum(r["compile"][k] for r in run if r["type"] == "epoch") for run in runs]
              for k in ("store_hits", "store_misses")}
    # per cycle: the fused gradient program, the evaluation and the weights' update
    assert counts == {"store_hits": [0, 6], "store_misses": [6, 0]}
    assert len(list((tmp_path / "xla" / "prdarts_programs").glob("*.pkl"))) == 6


def test_finished_workdir_is_left_alone(finished, data_dir):
    workdir, _ = finished
    before = (workdir / "metrics.jsonl").read_text()
    assert run_search(tiny_config(data_dir), str(workdir)) is None
    assert (workdir / "metrics.jsonl").read_text() == before


def test_non_finite_loss_stops_with_a_clear_message(tmp_path, data_dir):
    config = tiny_config(data_dir, lr_max=1e30, max_steps_per_epoch=6)
    with pytest.raises(NonFiniteLossError, match=r"cycle 1, epoch 0, step \d"):
        run_search(config, str(tmp_path))
    assert (tmp_path / "config.json").exists()


@pytest.mark.parametrize("key, value, msg", [
    ("dataset", "imagenet", "config.dataset='imagenet' is unknown"),
    ("space", "XL", "config.space='XL' is unknown"),
    ("batch_size", 0, "config.batch_size"),
    ("layers", 2, "config.layers"),
    ("train_portion", 1.0, "config.train_portion"),
    ("cell_output", "sum", "config.cell_output"),
    ("lr_schedule", "linear", "config.lr_schedule"),
    ("genotype_edge_score", "mean", "config.genotype_edge_score"),
    ("bn_impl", "cudnn", "config.bn_impl='cudnn' is unknown"),
    ("sgd_impl", "adam", "config.sgd_impl='adam' is unknown"),
    ("edge_sum_impl", "fast", "config.edge_sum_impl='fast' is unknown"),
])
def test_bad_config_values_fail_before_any_work(key, value, msg, tmp_path):
    config = base_config()
    config[key] = value
    with pytest.raises(ConfigError, match=msg):
        run_search(config, str(tmp_path / "w"))
    assert not (tmp_path / "w").exists()


@pytest.mark.parametrize("bn_impl, want", [("", "xla"), ("xla", "xla"), ("native", "native")])
def test_the_search_traces_with_the_batch_norm_of_its_config(bn_impl, want, monkeypatch,
                                                               tmp_path):
    from prdarts_jax.models import formulations
    from prdarts_jax.search import loop

    seen = []
    monkeypatch.setattr(loop, "_search", lambda *a, **k: seen.append(
        formulations.default_impl("batch_norm")))
    loop.run_search(tiny_config(tmp_path / "tfds", bn_impl=bn_impl), str(tmp_path / "w"))
    assert seen == [want]
    assert formulations.default_impl("batch_norm") == "xla"


@pytest.mark.parametrize("field, value, msg", [
    ("epochs", (15, 15), "config.schedule"),
    ("keep", (6, 6, 6, 6, 6, 4, 3, 2, 0), "config.schedule.keep"),
    ("morphs", (3, 3, 3, 3, 3, 0, 0, 3, 0), "config.schedule"),
])
def test_bad_schedules_are_refused(field, value, msg):
    config = base_config()
    config.schedule[field] = value
    with pytest.raises(ConfigError, match=msg):
        validate(config)


def test_paper_configs_validate_and_use_the_paper_schedule():
    for module, space in ((dl, "DL"), (dr, "DR"), (ur, "UR")):
        config = module.get_config()
        validate(config)
        assert config.space == space and config.dataset == "cifar10"
        assert (config.channels, config.layers) == (16, 8)
        assert config.schedule.keep == (6, 6, 6, 6, 6, 4, 3, 2, 1)
        assert sum(config.schedule.epochs) == 100
    assert PRESETS["DL"].max_len == 1


def test_cli_prints_one_line_errors(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "prdarts_jax.search", "--config", "configs/quick.py",
         "--workdir", str(tmp_path), "--config.space=XX"],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error: config.space='XX'")
    assert "Traceback" not in proc.stderr


def _variable_batch_config(data_dir):
    config = tiny_config(data_dir, max_steps_per_epoch=6)
    config.schedule.epochs, config.schedule.grace = (1, 1), (0, 0)
    config.schedule.morphs, config.schedule.keep = (0, 0), (2, 1)
    config.batch.variable = True
    config.batch.min, config.batch.step, config.batch.max, config.batch.interval = 16, 8, 32, 2
    return config


def _epoch_records(workdir):
    return [without_timings(r)
            for r in read_metrics(str(workdir / "metrics.jsonl")) if r["type"] == "epoch"]


def test_variable_batch_size_grows_the_search_finishes_and_resume_keeps_b(
        tmp_path, data_dir, monkeypatch, caplog):
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    assert run_search(_variable_batch_config(data_dir), str(straight)) is not None
    epochs = _epoch_records(straight)
    # each cycle restarts at b_min, grows on the first reading (memory is plentiful here)
    assert [r["batch_size"] for r in epochs] == [32, 32]
    assert all(16 < r["batch_size_mean"] < 32 for r in epochs)

    term = FaultHook(at_position=(2, 0, 4), signal_name="TERM")  # b is 32 in cycle 2 by then
    with pytest.raises(SearchInterrupted):
        run_search(_variable_batch_config(data_dir), str(stopped), faults=term)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="prdarts_jax"):
        assert run_search(_variable_batch_config(data_dir), str(stopped)) is not None
    assert "resumed from cycle 2, epoch 0, step 5" in caplog.text
    assert "batch size 16 -> 32" not in caplog.text  # b was restored, not grown again
    assert _epoch_records(stopped) == epochs


def test_paper_dl_config_starts_on_cifar_shaped_data(tmp_path, monkeypatch):
    """configs/dl.py on mocked CIFAR-10 (tfds' own mock_data), shrunk only where the CPU needs it:
    a tiny supernet and one two-step cycle, pruned to one op per edge."""
    import tensorflow_datasets as tfds
    from tensorflow_datasets.testing import mocking as tfds_mocking

    from tests.helpers import fixed_mock_getitems

    monkeypatch.setattr(tfds_mocking, "_getitems", fixed_mock_getitems)
    config = dl.get_config()
    config.data_dir = str(tmp_path / "tfds")
    config.channels, config.layers = 4, 3
    config.schedule.epochs, config.schedule.grace = (1,), (0,)
    config.schedule.morphs, config.schedule.keep = (0,), (1,)
    config.max_steps_per_epoch, config.eval_max_samples = 2, 24
    config.batch.interval = 1000
    config.compilation_cache_dir = ""
    config.depthwise_impl, config.pool_impl = "dense", "reduce_window"
    with tfds.testing.mock_data(num_examples=96):
        genotype = run_search(config, str(tmp_path / "w"))
    assert genotype is not None
    epochs = [r for r in read_metrics(str(tmp_path / "w" / "metrics.jsonl")) if r["type"] == "epoch"]
    assert [(r["batch_size"], r["steps"]) for r in epochs] == [(24, 2)]
    assert json.loads((tmp_path / "w" / "config.json").read_text())["space"] == "DL"




def _close(a, b) -> bool:
    """Equal, floats to 1e-6 relative (the same machine gives them bit for bit)."""
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b))
    return a == b


def test_defaults_reproduce_the_search_before_the_variants(straight_search):
    """The options beyond the paper (docs/variants.md) change nothing at their defaults: the
    tiny search's genotype and every record (timings and memory aside) are those written by
    the code before them (commit 7d3acd8, tests/fixtures/tiny_search_before_variants.json)."""
    path = f"{ROOT}/tests/fixtures/tiny_search_before_variants.json"
    with open(path) as f:
        before = json.load(f)
    workdir, genotype = straight_search
    assert genotype.to_json() == before["genotype"]
    records = [without_timings(r, also=("memory_usage",))
               for r in read_metrics(str(workdir / "metrics.jsonl"))]
    assert [r["type"] for r in records] == [r["type"] for r in before["records"]]
    for now, then in zip(records, before["records"]):
        assert _close(now, then), (now.get("type"), now.get("cycle"), now.get("epoch"))
