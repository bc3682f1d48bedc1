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

Step = Callable[[int], tuple[bool, jax.Array]]
"""step(i) runs step i and returns (the epoch ended with it, its loss for display)."""


def run_epoch(step: Step, *, start: int, total: int, position: tuple[int, ...], label: str,
              stop: StopFlag, faults: FaultHook, log_every: int) -> tuple[int, bool]:
    """Runs `step(start)`, `step(start + 1)`, … and returns (the next step, whether the epoch
    ended); it returns early, with False, after the step during which a signal arrived.

    `position` prefixes the step index for the fault hook; `total` is the bar's length (an
    estimate where the batch size varies); the loss is read back to the host only to display."""
    progress = Progress(total - start, label)
    i, done = start, False
    try:
        while not done:
            faults.at(*position, i)
            done, loss = step(i)
            i += 1
            if progress.active:
                progress.update(loss=float(loss))
            elif log_every and i % log_every == 0:
                log.info("%s step %d/%d loss %.4f", label, i, total, float(loss))
            if stop.signal is not None:
                break
    finally:
        progress.close()
    return i, done
