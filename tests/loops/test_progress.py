"""Progress off a terminal: heartbeat lines with the step, images/s and ETA, no escape codes;
rates that leave the first (compiling) step out; durations."""

import logging
import time

import pytest

from prdarts_jax.loops import progress
from prdarts_jax.loops.progress import Progress, duration


@pytest.mark.parametrize("seconds, text", [(5, "0:05"), (65.4, "1:05"), (3725, "1:02:05"),
                                           (None, "?"), (-1, "?"), (float("nan"), "?")])
def test_duration(seconds, text):
    assert duration(seconds) == text


def test_heartbeat_lines_off_a_terminal(caplog):
    caplog.set_level(logging.INFO, logger="prdarts_jax")
    p = Progress(10, "cycle 1 epoch 0", tty=False, heartbeat=1e-6)
    assert not p.active
    for i in range(4):
        time.sleep(0.01)
        p.update(step=i, images=32, loss=0.5)
    p.close()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3, lines  # none for the first step: it may have been compiling
    assert lines[-1].startswith("cycle 1 epoch 0: step 4/10, ")
    assert " img/s, loss 0.5000, epoch ETA 0:00" in lines[-1]
    assert not any("\x1b" in x or "\r" in x for x in lines)


def test_rates_leave_the_first_step_out():
    p = Progress(100, "x", tty=False, heartbeat=0)
    time.sleep(0.5)       # a slow first step (compiling) must not drag the rate down
    p.update(step=0, images=32)
    assert p.rate() is None
    for i in range(1, 5):
        time.sleep(0.01)
        p.update(step=i, images=32)
    steps_per_s, images_per_s = p.rate()
    assert images_per_s == pytest.approx(32 * steps_per_s)
    assert steps_per_s > 20   # counted from the first step's end: about 4 steps in 0.04 s


def test_the_heartbeat_interval_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv(progress.HEARTBEAT_ENV, "2.5")
    assert progress.heartbeat_seconds() == 2.5
    monkeypatch.setenv(progress.HEARTBEAT_ENV, "soon")
    with pytest.raises(ValueError, match="PRDARTS_HEARTBEAT_SECONDS='soon'"):
        progress.heartbeat_seconds()
    monkeypatch.delenv(progress.HEARTBEAT_ENV)
    assert progress.heartbeat_seconds() == progress.HEARTBEAT_SECONDS
