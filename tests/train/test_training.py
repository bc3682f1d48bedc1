"""Retraining on digits: the loss, the step, a whole run, the CLIs, resume, config errors.

Every run here uses one network (DL2, C=8, 3 cells, digits), so the step, init and eval programs
compile once for the module (`train_programs.programs_for` keeps them).
"""

import functools
import json
import logging
import os
import signal
import subprocess
import sys

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from absl import flags

from prdarts_jax.data import load_split
from prdarts_jax.errors import NonFiniteLossError, TrainingInterrupted
from prdarts_jax.runtime import parallel
from prdarts_jax.runtime.interrupts import FaultHook
from prdarts_jax.runtime.metrics import read_metrics
from prdarts_jax.space.genotypes import PUBLISHED, save_genotype
from prdarts_jax.train import cli as train_cli
from prdarts_jax.train import evaluate as train_eval
from prdarts_jax.train import loop as training
from prdarts_jax.train import programs as train_programs
from prdarts_jax.train.config import ConfigError, base_config, genotype_of, validate

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
from configs import train_cifar10, train_cifar100, train_digits
from tests.helpers import without_timings

# Measured with configs/train_digits.py (15 epochs): final test accuracy 0.96, mean error of the
# last 5 epochs 0.04. Chance is 0.10; the floor leaves a wide margin for other seeds/platforms.
TEST_ACC_FLOOR = 0.8


def digits_config(data_dir, **overrides):
    config = train_digits.get_config()
    config.data_dir = str(data_dir)
    for k, v in overrides.items():
        config[k] = v
    return config


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("tfds")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data_dir):
    workdir = tmp_path_factory.mktemp("dl2_digits")
    config = digits_config(data_dir)
    return workdir, config, training.train_and_evaluate(config, str(workdir))


@pytest.fixture(scope="module")
def setup(trained, data_dir):
    """Network, programs and a fresh state of the trained run's structure (compiled already)."""
    _, config, _ = trained
    net = train_programs.build_network(config, genotype_of(config))
    settings = train_programs.step_settings(config)
    programs = train_programs.programs_for(net, train_programs.data_spec(config), settings)
    images, labels = (jnp.asarray(a) for a in load_split("digits", "train", str(data_dir)))
    return net, settings, programs, images, labels


def test_digits_retraining_learns(trained):
    workdir, config, results = trained
    assert results["final_test_acc"] > TEST_ACC_FLOOR
    records = list(read_metrics(str(workdir / "metrics.jsonl")))
    assert [r["epoch"] for r in records] == list(range(config.epochs))
    assert records[-1]["train_loss"] < records[0]["train_loss"]
    assert [r["drop_path"] for r in records[:2]] == [0.0, 0.3 / config.epochs]
    assert records[0]["lr"] == config.lr
    assert records[-1]["lr"] == pytest.approx(config.lr * (1 + np.cos(np.pi * 14 / 15)) / 2)
    evaluated = [r["epoch"] for r in records if "test_acc" in r]
    assert evaluated == [4, 9, 10, 11, 12, 13, 14]  # eval_every 5, and the last 5 epochs
    assert set(records[-1]) == {"epoch", "lr", "drop_path", "train_loss", "train_acc", "steps",
                                "test_loss", "test_acc", "seconds", "compile_seconds",
                                "compile", "num_devices"}
    assert all(0 <= r["compile_seconds"] <= r["seconds"] for r in records)


def test_results_report_the_mean_error_of_the_last_5_epochs(trained):
    workdir, _, results = trained
    records = list(read_metrics(str(workdir / "metrics.jsonl")))
    assert results["mean_test_error_last_epochs"] == pytest.approx(
        np.mean([1 - r["test_acc"] for r in records[-5:]]))
    assert results["last_epochs_evaluated"] == [10, 11, 12, 13, 14]
    assert results["final_test_error"] == pytest.approx(1 - records[-1]["test_acc"])
    assert json.loads((workdir / "results.json").read_text()) == results
    assert results["params"] == 22146 and results["genotype"] == "DL2"
    assert json.loads((workdir / "config.json").read_text())["dataset"] == "digits"
    assert sorted(os.listdir(workdir / "checkpoints")) == ["13000000", "14000000", "15000000"]


def test_evaluate_reproduces_the_final_test_accuracy(trained):
    workdir, _, results = trained
    r = train_eval.evaluate_workdir(str(workdir))
    assert r["epoch"] == 14
    assert r["test_acc"] == pytest.approx(results["final_test_acc"])
    assert r["test_error"] == pytest.approx(results["final_test_error"])


def test_loss_is_ce_plus_0p4_aux_ce(setup):
    net, settings, _, images, labels = setup
    state = train_programs.init_state(net, jax.random.PRNGKey(3), (8, 8, 1), settings)
    x, y = images[:32].astype(jnp.float32) / 255.0, labels[:32]
    variables = {"params": state["params"], "batch_stats": state["batch_stats"]}
    loss_fn = jax.jit(functools.partial(train_programs.compute_loss, net))
    loss, aux = loss_fn(variables, x, y, jax.random.PRNGKey(4), 0.2, 0.4)
    assert aux["aux_logits"].shape == aux["logits"].shape == (32, 10)
    ce = np.mean(optax.softmax_cross_entropy_with_integer_labels(aux["logits"], y))
    ce_aux = np.mean(optax.softmax_cross_entropy_with_integer_labels(aux["aux_logits"], y))
    assert abs(ce - ce_aux) > 1e-3  # the two heads disagree, so the weighting is visible
    np.testing.assert_allclose(loss, ce + 0.4 * ce_aux, rtol=1e-6)


def test_train_step_decreases_the_loss_on_a_fixed_batch(setup):
    net, settings, programs, images, labels = setup
    state = train_programs.init_state(net, jax.random.PRNGKey(5), (8, 8, 1), settings)
    idx = np.arange(64)
    key, lr, p = jax.random.PRNGKey(6), jnp.float32(0.05), jnp.float32(0.0)
    losses = []
    for _ in range(6):
        state, m = programs.train_step(state, images, labels, idx, key, lr, p)
        losses.append(float(m["loss"]))
    assert losses[-1] < 0.8 * losses[0], losses


def run_cli(module, argv, monkeypatch):
    """Runs a CLI's main in this process (sharing compiled programs), with fresh flags."""
    fv = flags.FLAGS
    for name in [n for n in fv if n.startswith("config.")]:
        delattr(fv, name)  # override flags from an earlier parse would be defined twice
    fv.unparse_flags()
    argv = ["prog", *argv]
    monkeypatch.setattr(sys, "argv", argv)  # config_flags reads overrides from sys.argv
    fv(argv)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        module.main(argv[:1])
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def test_a_search_genotype_json_trains_via_the_cli(tmp_path, data_dir, monkeypatch):
    path = tmp_path / "genotype.json"
    save_genotype(PUBLISHED["DL2"], str(path))
    workdir = tmp_path / "run"
    run_cli(train_cli, ["--config", f"{ROOT}/configs/train_digits.py", "--workdir", str(workdir),
                        f"--config.genotype={path}", f"--config.data_dir={data_dir}",
                        "--config.epochs=1", "--config.max_steps_per_epoch=3"], monkeypatch)
    results = json.loads((workdir / "results.json").read_text())
    assert results["genotype"] == str(path) and results["params"] == 22146
    assert [r["steps"] for r in read_metrics(str(workdir / "metrics.jsonl"))] == [3]


def test_rerun_resumes_at_the_next_epoch(tmp_path, data_dir, caplog):
    workdir = str(tmp_path)
    short = dict(max_steps_per_epoch=3, final_epochs=1)
    training.train_and_evaluate(digits_config(data_dir, epochs=1, **short), workdir)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="prdarts_jax"):
        training.train_and_evaluate(digits_config(data_dir, epochs=2, **short), workdir)
    assert "resumed at epoch 1, step 0" in caplog.text
    assert "epoch 0:" not in caplog.text and "epoch 1:" in caplog.text
    assert [r["epoch"] for r in read_metrics(os.path.join(workdir, "metrics.jsonl"))] == [0, 1]
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["1000000", "2000000"]


def test_one_compiled_step_serves_all_epochs_and_resumes(trained, data_dir, tmp_path):
    """lr and drop probability are traced, and a restored state matches a fresh one."""
    _, config, _ = trained
    net = train_programs.build_network(config, genotype_of(config))
    programs = train_programs.programs_for(net, train_programs.data_spec(config),
                                     train_programs.step_settings(config))
    before = programs.train_step._cache_size(), programs.eval_batch._cache_size()
    for epochs in (1, 2):
        training.train_and_evaluate(digits_config(data_dir, epochs=epochs, max_steps_per_epoch=2),
                                    str(tmp_path))
    assert (programs.train_step._cache_size(), programs.eval_batch._cache_size()) == before


def test_count_params_cli_prints_the_count(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "prdarts_jax.train", "--config", "configs/train_digits.py",
         "--count_params", "--config.genotype=DR"],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "params: 34130 (34.13 K), MAdds: 476032 (0.48 M)"


def test_bad_genotype_is_one_line_error(tmp_path, monkeypatch, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_cli(train_cli, ["--config", f"{ROOT}/configs/train_digits.py", "--count_params",
                            "--config.genotype=DL9"], monkeypatch)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: config.genotype='DL9': unknown genotype")


def test_non_finite_loss_stops_with_a_clear_message(tmp_path, data_dir):
    config = digits_config(data_dir, lr=1e30, max_steps_per_epoch=5, log_every=1)
    with pytest.raises(NonFiniteLossError, match="non-finite loss"):
        training.train_and_evaluate(config, str(tmp_path))


@pytest.mark.parametrize("key, value, msg", [
    ("dataset", "imagenet", "config.dataset='imagenet' is unknown"),
    ("genotype", "nope.json", "config.genotype='nope.json'"),
    ("layers", 2, "config.layers"),
    ("drop_path", 1.0, "config.drop_path"),
    ("aux_weight", -1.0, "config.aux_weight"),
    ("eval_every", 0, "config.eval_every"),
])
def test_bad_config_values_fail_before_any_work(key, value, msg, tmp_path):
    config = base_config()
    config[key] = value
    with pytest.raises(ConfigError, match=msg):
        training.train_and_evaluate(config, str(tmp_path / "w"))
    assert not (tmp_path / "w").exists()


def test_shipped_configs_validate():
    for module, dataset in ((train_cifar10, "cifar10"), (train_cifar100, "cifar100"),
                            (train_digits, "digits")):
        config = module.get_config()
        validate(config)
        assert config.dataset == dataset
    c10 = train_cifar10.get_config()
    assert (c10.channels, c10.layers, c10.epochs, c10.batch_size) == (36, 20, 600, 96)
    assert (c10.lr, c10.momentum, c10.weight_decay, c10.grad_clip) == (0.025, 0.9, 3e-4, 5.0)
    assert (c10.cutout, c10.aux_weight, c10.drop_path) == (16, 0.4, 0.3)


# --- exact resume of a retraining: SIGTERM, SIGKILL mid-epoch, SIGKILL during a save ----------

SHORT = dict(epochs=3, max_steps_per_epoch=4, eval_every=1, final_epochs=1)


def _final_state(workdir, config):
    net = train_programs.build_network(config, genotype_of(config))
    ckpt = train_eval.checkpointer(str(workdir), config.keep_checkpoints)
    try:
        return ckpt.restore_latest(lambda meta: train_programs.abstract_state(
            net, (8, 8, 1), train_programs.step_settings(config), parallel.data_placement(1)))
    finally:
        ckpt.close()


def _records(workdir):
    return [without_timings(r)
            for r in read_metrics(os.path.join(workdir, "metrics.jsonl"))]


@pytest.fixture(scope="module")
def short_straight(tmp_path_factory, data_dir):
    workdir = tmp_path_factory.mktemp("short")
    config = digits_config(data_dir, **SHORT)
    return workdir, training.train_and_evaluate(config, str(workdir))


def _assert_resumes_to(workdir, short_straight, data_dir):
    straight_dir, straight_results = short_straight
    config = digits_config(data_dir, **SHORT)
    assert training.train_and_evaluate(config, str(workdir)) == straight_results
    assert _records(workdir) == _records(straight_dir)
    (a, meta_a), (b, meta_b) = _final_state(workdir, config), _final_state(straight_dir, config)
    assert meta_a == meta_b
    chex.assert_trees_all_equal(jax.device_get(a), jax.device_get(b))


def test_sigterm_mid_epoch_saves_there_and_resume_is_exact(tmp_path, data_dir, short_straight,
                                                          monkeypatch, caplog):
    term = FaultHook(at_position=(1, 2), signal_name="TERM")
    with pytest.raises(TrainingInterrupted, match="in epoch 1 at step 3; the state is saved"):
        training.train_and_evaluate(digits_config(data_dir, **SHORT), str(tmp_path), faults=term)
    assert "1000003" in os.listdir(tmp_path / "checkpoints")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="prdarts_jax"):
        _assert_resumes_to(tmp_path, short_straight, data_dir)
    assert "resumed at epoch 1, step 3" in caplog.text


def _run_killed(workdir, data_dir, env):
    """The short run in a subprocess that kills itself (SIGKILL) where `env` says."""
    code = ("import sys; sys.path.insert(0, %r)\n"
            "from prdarts_jax.runtime import compile_cache; compile_cache.enable(%r)\n"
            "from tests.train.test_training import digits_config, SHORT\n"
            "from prdarts_jax.runtime.interrupts import FaultHook\n"
            "from prdarts_jax.train.loop import train_and_evaluate\n"
            "train_and_evaluate(digits_config(%r, **SHORT), %r, faults=FaultHook.from_environ())\n") % (
        ROOT, jax.config.jax_compilation_cache_dir or "", str(data_dir), str(workdir))
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**os.environ, **env},
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]


def test_sigkill_mid_epoch_then_resume_is_exact(tmp_path, data_dir, short_straight):
    _run_killed(tmp_path, data_dir, {"PRDARTS_FAULT_AT": "2,1"})
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["1000000", "2000000"]
    _assert_resumes_to(tmp_path, short_straight, data_dir)


def test_sigkill_during_a_save_then_resume_is_exact(tmp_path, data_dir, short_straight):
    _run_killed(tmp_path, data_dir, {"PRDARTS_FAULT_IN_SAVE": "2000000"})
    left = os.listdir(tmp_path / "checkpoints")
    assert "1000000" in left and "2000000" not in left
    assert any(name.startswith("2000000") and "tmp" in name for name in left), left
    _assert_resumes_to(tmp_path, short_straight, data_dir)


def test_a_log_shows_heartbeats_and_the_eta(tmp_path, data_dir, caplog, monkeypatch):
    from prdarts_jax.loops import progress
    monkeypatch.setattr(progress, "on_terminal", lambda: False)   # as in a log, even under -s
    monkeypatch.setenv("PRDARTS_HEARTBEAT_SECONDS", "0.000001")
    with caplog.at_level(logging.INFO, logger="prdarts_jax"):
        training.train_and_evaluate(digits_config(data_dir, epochs=2, max_steps_per_epoch=3,
                                                  final_epochs=1), str(tmp_path))
    assert "epoch 0: step 3/3, " in caplog.text and " img/s, loss " in caplog.text
    etas = [line.rsplit("| ETA ", 1)[1] for line in caplog.text.splitlines()
            if " | ETA " in line]
    assert len(etas) == 2 and etas[-1] == "0:00"
    assert "\x1b[" not in caplog.text and "\r" not in caplog.text
