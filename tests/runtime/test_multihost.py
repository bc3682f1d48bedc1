"""Multi-host for real: two JAX processes on this machine (loopback, Gloo collectives), each
with two forced CPU devices, started through the environment `launch/grid_slurm.sh` exports.

- a search on 2 processes x 2 devices computes what 1 process x 4 devices computes (the first
  epoch's losses to 1e-6 relative; the genotype), with α and the weights asserted identical on
  every device and process after every step (`PRDARTS_CHECK_REPLICAS`), and process 0 alone
  writing the workdir's files;
- one process killed at the start of a save: the other writes its part alone, stops within
  seconds with one error line (exit code 3), the half-written checkpoint is never taken, and both
  started again resume and end exactly as the straight run;
- checkpoints move between 2 processes and 1;
- retraining on 2 processes = 1 process on the same global batch.

The grid launcher's two-node job script is exercised in tests/grid/test_grid.py.
"""

import json
import os

import pytest

from prdarts_jax.runtime.checkpoints import position_id
from tests.helpers import multihost, rolled_back_copy, without_timings

pytestmark = pytest.mark.multihost
SEARCH = ("-m", "prdarts_jax.search", "--config", "configs/quick.py")
CHECK = {"PRDARTS_CHECK_REPLICAS": "1"}


def _search_args(workdir, digits_dir):
    return (*SEARCH, "--workdir", str(workdir), f"--config.data_dir={digits_dir}",
            *multihost.TINY_SEARCH)


def _records(workdir, kind=None):
    out = []
    for line in (workdir / "metrics.jsonl").read_text().splitlines():
        r = json.loads(line)
        if r.get("type") == "finished" or (kind and r.get("type") != kind):
            continue
        out.append(without_timings(r, also=("memory_source", "memory_usage")))
    return out


def _ok(job):
    for p in job:
        assert p.returncode == 0, p.text()[-3000:]


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory, digits_dir):
    base = tmp_path_factory.mktemp("mh2")
    job = multihost.run(_search_args(base / "run", digits_dir), processes=2, devices=2,
                        logdir=base, env=CHECK)
    _ok(job)
    return base / "run", job


@pytest.fixture(scope="module")
def one_process(tmp_path_factory, digits_dir):
    base = tmp_path_factory.mktemp("mh1")
    job = multihost.run(_search_args(base / "run", digits_dir), processes=1, devices=4,
                        logdir=base, env=CHECK)
    _ok(job)
    return base / "run", job


def test_two_processes_compute_what_one_process_on_as_many_devices_does(two_processes,
                                                                         one_process):
    (two, _), (one, _) = two_processes, one_process
    a, b = _records(two, "epoch")[0], _records(one, "epoch")[0]
    for key in ("train_loss", "train_acc", "alpha_loss", "val_loss", "val_acc"):
        assert a[key] == pytest.approx(b[key], rel=1e-6, abs=1e-7), key
    assert a["num_devices"] == b["num_devices"] == 4
    assert (two / "genotype.json").read_text() == (one / "genotype.json").read_text()


def test_replicas_were_checked_on_every_step_and_the_files_written_once(two_processes):
    workdir, job = two_processes
    records = _records(workdir)
    epochs = [(r["cycle"], r["epoch"]) for r in records if r["type"] == "epoch"]
    assert epochs == [(1, 0), (2, 0)]                          # once each, not once per process
    assert [r["type"] for r in records].count("cycle") == 2
    finished = [json.loads(x) for x in (workdir / "metrics.jsonl").read_text().splitlines()
                if '"finished"' in x]
    assert len(finished) == 1
    assert json.loads((workdir / "config.json").read_text())["schedule"]["epochs"] == [1, 1]
    assert "search finished" in job[0].text() and "search finished" not in job[1].text()
    assert "process 1 of 2" in job[1].text()


def test_a_killed_process_stops_the_other_and_both_resume_exactly(two_processes, digits_dir,
                                                                  tmp_path):
    straight, _ = two_processes
    workdir = tmp_path / "run"
    final_save = str(position_id(3, 0, 0))     # the last cycle's end; cycle 2's start is saved
    (tmp_path / "first").mkdir()
    job = multihost.run(_search_args(workdir, digits_dir), processes=2, devices=2,
                        logdir=tmp_path / "first",
                        per_process_env={1: {"PRDARTS_FAULT_AT_SAVE": final_save}})
    killed, survivor = job[1], job[0]
    assert killed.returncode == -9
    assert survivor.returncode == 3, survivor.text()[-3000:]
    assert survivor.ended - killed.ended < 40          # peer timeout 10 s, polled every 2 s
    errors = [x for x in survivor.text().splitlines() if x.startswith("error: ")]
    assert len(errors) == 1 and "start all processes again" in errors[0], errors
    assert "Traceback" not in survivor.text() and "Check failure" not in survivor.text()
    assert final_save not in os.listdir(workdir / "checkpoints")   # never committed
    assert not (workdir / "genotype.json").exists()
    (tmp_path / "again").mkdir()
    again = multihost.run(_search_args(workdir, digits_dir), processes=2, devices=2,
                          logdir=tmp_path / "again", env=CHECK)
    _ok(again)
    assert "resumed from cycle 2, epoch 0, step 0" in again[0].text()
    assert _records(workdir) == _records(straight)
    assert (workdir / "genotype.json").read_text() == (straight / "genotype.json").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("processes, devices", [(1, 4), (2, 2)])
def test_checkpoints_move_between_one_and_two_processes(two_processes, one_process, digits_dir,
                                                       tmp_path, processes, devices):
    """A checkpoint written by 2 processes resumes in 1, and one written by 1 in 2."""
    source, _ = two_processes if processes == 1 else one_process
    workdir = rolled_back_copy(source, tmp_path / "run", cycle=2)
    job = multihost.run(_search_args(workdir, digits_dir), processes=processes,
                        devices=devices, logdir=tmp_path)
    _ok(job)
    assert "resumed from cycle 2, epoch 0, step 0" in job[0].text()
    assert (tmp_path / "run" / "genotype.json").read_text() == \
        (source / "genotype.json").read_text()


@pytest.mark.slow
def test_retraining_on_two_processes_is_retraining_on_one(tmp_path, digits_dir):
    args = ("-m", "prdarts_jax.train", "--config", "configs/train_digits.py",
            f"--config.data_dir={digits_dir}", "--config.epochs=1",
            "--config.max_steps_per_epoch=3", "--config.final_epochs=1")
    runs = {}
    for processes, devices in ((2, 2), (1, 4)):
        out = tmp_path / f"p{processes}"
        out.mkdir()
        _ok(multihost.run((*args, "--workdir", str(out / "run")), processes=processes,
                          devices=devices, logdir=out, env=CHECK))
        runs[processes] = [json.loads(x) for x in
                           (out / "run" / "metrics.jsonl").read_text().splitlines()]
    (two,), (one,) = runs[2], runs[1]
    for key in ("train_loss", "train_acc", "test_loss", "test_acc"):
        assert two[key] == pytest.approx(one[key], rel=1e-6, abs=1e-7), key
    assert two["num_devices"] == one["num_devices"] == 4
