"""Resume: a search killed anywhere and rerun ends exactly as one run straight through."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import chex
import jax
import pytest

from prdarts_jax.errors import CheckpointError
from prdarts_jax.runtime.checkpoints import position_id
from prdarts_jax.search.config import ConfigError
from prdarts_jax.search.loop import run_search
from tests.helpers import ROOT, final_state, tiny_config, without_timings


def _metrics(workdir):
    return [without_timings(json.loads(line))
            for line in (workdir / "metrics.jsonl").read_text().splitlines()]




def _run_cli(workdir, data_dir, env=None, wait_for_lines=None, sig=None):
    """Runs the tiny search in a subprocess (optionally signalling it once training is under way)."""
    code = ("import sys; sys.path.insert(0, %r)\n"
            "from tests.helpers import tiny_config\n"
            "from prdarts_jax.runtime.cli import run_main\n"
            "from prdarts_jax.runtime.interrupts import FaultHook\n"
            "from prdarts_jax.search.loop import run_search\n"
            "run_main(lambda: run_search(tiny_config(%r), %r,\n"
            "                            faults=FaultHook.from_environ()))\n"
            ) % (ROOT, str(data_dir), str(workdir))
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env={**os.environ, **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if sig is not None:
        metrics = workdir / "metrics.jsonl"
        deadline = time.time() + 600
        while time.time() < deadline and proc.poll() is None:
            if metrics.exists() and len(metrics.read_text().splitlines()) >= wait_for_lines:
                proc.send_signal(sig)
                break
            time.sleep(0.2)
    out, err = proc.communicate(timeout=900)
    return proc.returncode, err


def _assert_same_as_straight(workdir, straight, config):
    straight_dir, genotype = straight
    assert run_search(config, str(workdir)) == genotype
    assert _metrics(workdir) == _metrics(straight_dir)
    (a, meta_a), (b, meta_b) = final_state(workdir, config), final_state(straight_dir, config)
    assert meta_a["position"] == meta_b["position"]
    chex.assert_trees_all_equal(jax.device_get(a), jax.device_get(b))


@pytest.mark.parametrize("where", ["1,1,3", "2,0,0"], ids=["mid-epoch", "after-boundary"])
def test_sigkill_then_resume_is_exact(where, tmp_path, digits_dir, straight_search):
    code, _ = _run_cli(tmp_path, digits_dir, env={"PRDARTS_FAULT_AT": where})
    assert code == -signal.SIGKILL
    assert not (tmp_path / "genotype.json").exists()
    _assert_same_as_straight(tmp_path, straight_search, tiny_config(digits_dir))


def test_sigkill_during_a_save_then_resume_is_exact(tmp_path, digits_dir, straight_search):
    """Killed after the files of the cycle-2 checkpoint are written, before orbax commits them."""
    boundary = position_id(2, 0, 0)
    code, _ = _run_cli(tmp_path, digits_dir, env={"PRDARTS_FAULT_IN_SAVE": str(boundary)})
    assert code == -signal.SIGKILL
    left = os.listdir(tmp_path / "checkpoints")
    assert str(boundary) not in left
    assert any(name.startswith(f"{boundary}.") and "tmp" in name for name in left), left
    _assert_same_as_straight(tmp_path, straight_search, tiny_config(digits_dir))


def test_sigterm_saves_and_resume_is_exact(tmp_path, digits_dir, straight_search):
    code, err = _run_cli(tmp_path, digits_dir, wait_for_lines=2, sig=signal.SIGTERM)
    assert code == 2, err[-2000:]
    assert "stopped by signal" in err and "run the same command to resume" in err
    _assert_same_as_straight(tmp_path, straight_search, tiny_config(digits_dir))


def _unfinished_copy(straight_dir, dest):
    shutil.copytree(straight_dir, dest)
    for name in ("genotype.json", "genotype.txt", "final_pools.json"):
        (dest / name).unlink()
    return dest


def test_the_finished_checkpoint_restores_and_repeats_nothing(tmp_path, digits_dir,
                                                              straight_search, caplog):
    """Killed after the final save but before genotype.json: the rerun restores the finished
    checkpoint itself (the last cycle's state, not the final pools' shapes) and trains nothing."""
    workdir = _unfinished_copy(straight_search[0], tmp_path / "w")
    with caplog.at_level("WARNING", logger="prdarts_jax"):
        assert run_search(tiny_config(digits_dir), str(workdir)) == straight_search[1]
    assert not (workdir / "checkpoints_unreadable").exists()
    assert not [r for r in caplog.records if "unreadable" in r.getMessage()]
    assert _metrics(workdir) == _metrics(straight_search[0])
    state, meta = final_state(workdir, tiny_config(digits_dir))
    assert meta["finished"] and "state_pools" in meta


def _corrupt(step_dir):
    for root, _, files in os.walk(step_dir):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "r+b") as f:
                f.truncate(max(os.path.getsize(path) // 2, 0))


def test_corrupt_latest_checkpoint_is_skipped(tmp_path, digits_dir, straight_search):
    workdir = _unfinished_copy(straight_search[0], tmp_path / "w")
    ckpt_dir = workdir / "checkpoints"
    latest = max(ckpt_dir.iterdir(), key=lambda p: int(p.name) if p.name.isdigit() else -1)
    _corrupt(latest)
    assert run_search(tiny_config(digits_dir), str(workdir)) == straight_search[1]
    assert _metrics(workdir) == _metrics(straight_search[0])


def test_unreadable_checkpoints_fail_clearly_and_touch_nothing(tmp_path, digits_dir,
                                                              straight_search):
    workdir = _unfinished_copy(straight_search[0], tmp_path / "w")
    for step in (workdir / "checkpoints").iterdir():
        if step.name.isdigit():
            _corrupt(step)
    before = {p: p.read_bytes() for p in workdir.rglob("*") if p.is_file()}
    with pytest.raises(CheckpointError, match="none of the .* checkpoints .* is readable"):
        run_search(tiny_config(digits_dir), str(workdir))
    after = {p: p.read_bytes() for p in workdir.rglob("*") if p.is_file()}
    assert before == after


def test_changed_config_is_refused_unless_safe_and_allowed(tmp_path, digits_dir,
                                                           straight_search):
    workdir = _unfinished_copy(straight_search[0], tmp_path / "w")
    with pytest.raises(ConfigError, match=r"different config \(lr_max, seed\)"):
        run_search(tiny_config(digits_dir, seed=1, lr_max=0.1), str(workdir))
    with pytest.raises(ConfigError, match="allow_config_changes"):
        run_search(tiny_config(digits_dir, log_every=7), str(workdir))
    config = tiny_config(digits_dir, log_every=7, cpu_library_fusions="eltwise",
                         allow_config_changes=True)
    assert run_search(config, str(workdir)) == straight_search[1]
