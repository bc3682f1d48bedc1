"""What a user of `python -m prdarts_jax.search` sees in a log (no terminal): compile
announcements, heartbeats, ETAs, the closing summary; TensorBoard events while it runs; the
`finished` record; none of TFDS's chatter and no terminal escape codes."""

import json
import os
import subprocess
import sys
import time

import pytest

from prdarts_jax.runtime import compile_cache
from tests.helpers import ROOT, tensorboard_scalars

pytest.importorskip("tensorboardX")
CACHE = os.environ.get("PRDARTS_TEST_XLA_CACHE", os.path.join(compile_cache.DEFAULT_DIR, "tests"))


@pytest.fixture(scope="module")
def logged_run(tmp_path_factory):
    """(workdir, stderr, TensorBoard scalars seen while the run was still going); digits is
    prepared afresh, so the log would show TFDS's chatter if it were let through."""
    workdir = tmp_path_factory.mktemp("logged") / "run"
    digits_dir = workdir.parent / "tfds"
    args = [sys.executable, "-m", "prdarts_jax.search", "--config", "configs/quick.py",
            "--workdir", str(workdir), f"--config.data_dir={digits_dir}",
            "--config.channels=4", "--config.layers=3", "--config.schedule.epochs=(2,2,1,1)",
            "--config.max_steps_per_epoch=4", "--config.eval_max_samples=256",
            f"--config.compilation_cache_dir={CACHE}"]
    env = {**os.environ, "PRDARTS_HOST_MEMORY": "off", "PRDARTS_HEARTBEAT_SECONDS": "0.001"}
    with open(workdir.parent / "stderr", "w") as err:
        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err)
        live, deadline = None, time.time() + 900
        while proc.poll() is None and time.time() < deadline:
            metrics = workdir / "metrics.jsonl"
            if live is None and metrics.exists() and '"type": "epoch"' in metrics.read_text():
                seen = tensorboard_scalars(workdir / "tensorboard")   # written just after
                if "epoch/val_acc" in seen:
                    live = (seen, proc.poll() is None)
            time.sleep(0.2)
        proc.wait(timeout=60)
    assert proc.returncode == 0, (workdir.parent / "stderr").read_text()[-3000:]
    return workdir, (workdir.parent / "stderr").read_text(), live


def test_the_log_announces_compiles_beats_and_ends_with_the_result(logged_run):
    workdir, err, _ = logged_run
    assert "preparing dataset digits in " in err and "prepared dataset digits in " in err
    assert "compiling cycle 1 step programs (batch 32)…" in err
    assert "compiled cycle 1 step programs (batch 32) in " in err
    assert "compiling cycle 2 evaluation program…" in err
    assert "cycle 1 epoch 0: step 3/4, " in err and " img/s, loss " in err
    assert "| ETA cycle " in err and ", search " in err
    closing = err[err.index("search finished: 4 cycles, 6 epochs in "):]
    assert "of it compiling" in closing and "final α-half validation accuracy" in closing
    assert f"python -m prdarts_jax.report --workdir {workdir}" in closing
    assert (f"python -m prdarts_jax.train --config configs/train_digits.py "
            f"--config.genotype={workdir}/genotype.json --workdir {workdir}_train") in closing
    for noise in ("\x1b[", "\r", "Variant folder", "Downloading and preparing", "Traceback"):
        assert noise not in err


def test_tensorboard_events_are_written_during_the_run(logged_run):
    workdir, _, live = logged_run
    assert live is not None
    scalars, still_running = live
    assert still_running
    assert 0 in scalars["epoch/val_acc"]
    final = tensorboard_scalars(workdir / "tensorboard")
    epochs = [json.loads(x) for x in (workdir / "metrics.jsonl").read_text().splitlines()
              if '"type": "epoch"' in x]
    assert sorted(final["epoch/val_acc"]) == list(range(6))
    assert [final["epoch/val_acc"][i] for i in range(6)] == pytest.approx(
        [r["val_acc"] for r in epochs])
    assert sorted(final["cycle_normal/similarity"]) == [1, 2, 3, 4]
    assert {"epoch/lr", "epoch/batch_size", "epoch/compile_seconds", "epoch/train_loss",
            "cycle/compile_seconds", "epoch/compile/programs/grads",
            "cycle/compile/cache_hits", "cycle/compile/cache_misses"} <= set(final)


def test_the_finished_record_holds_the_totals(logged_run):
    workdir, _, _ = logged_run
    last = json.loads((workdir / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["type"] == "finished" and last["cycles"] == 4 and last["epochs"] == 6
    assert 0 < last["compile_seconds"] < last["seconds"]
