"""The epoch driver both loops run: steps until the epoch ends or a signal asks to stop.

What a step does (the search's α and weight steps, retraining's SGD step) and what it tallies
are the caller's; the driver owns the order of the things around it: the fault hook of the
resume tests, the progress bar or the periodic log line, and the stop check after each step.
"""

from __future__ import annotations

import logging
from typing import Callable

import jax

from prdarts_jax.loops.progress import Progress
from prdarts_jax.runtime.interrupts import FaultHook, StopFlag

log = logging.getLogger("prdarts_jax")

Step = Callable[[int], tuple[bool, jax.Array, int]]
"""step(i) runs step i and returns (the epoch ended with it, its loss for display, its number
of images)."""


def run_epoch(step: Step, *, start: int, total: int, position: tuple[int, ...], label: str,
              stop: StopFlag, faults: FaultHook, log_every: int) -> tuple[int, bool]:
    """Runs `step(start)`, `step(start + 1)`, … and returns (the next step, whether the epoch
    ended); it returns early, with False, after the step during which a signal arrived.

    `position` prefixes the step index for the fault hook; `total` is the epoch's length in
    steps (an estimate where the batch size varies); the loss is read back to the host only to
    display. Off a terminal a heartbeat line shows progress (loops.progress), and every
    `log_every` steps a line too."""
    progress = Progress(total, label, start=start)
    i, done = start, False
    try:
        while not done:
            faults.at(*position, i)
            done, loss, images = step(i)
            progress.update(step=i, images=images, loss=loss)
            i += 1
            if not progress.active and log_every and i % log_every == 0:
                log.info("%s: %s", label, progress.line(i - 1, loss))
            if stop.signal is not None:
                break
    finally:
        progress.close()
    return i, done
