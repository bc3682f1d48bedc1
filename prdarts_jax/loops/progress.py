"""What a user sees while an epoch runs: a progress bar on a terminal; elsewhere (a log file,
SLURM, a pipe) a heartbeat line every `HEARTBEAT_SECONDS` with the step, images/s and the
epoch's ETA, and no terminal escape codes. Also the ETA format the loops' epoch lines use."""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any

log = logging.getLogger("prdarts_jax")

HEARTBEAT_ENV = "PRDARTS_HEARTBEAT_SECONDS"
HEARTBEAT_SECONDS = 30.0
"""Seconds between heartbeat lines off a terminal (`$PRDARTS_HEARTBEAT_SECONDS` overrides)."""


def heartbeat_seconds() -> float:
    value = os.environ.get(HEARTBEAT_ENV, "")
    try:
        return float(value) if value else HEARTBEAT_SECONDS
    except ValueError:
        raise ValueError(f"{HEARTBEAT_ENV}={value!r} is not a number of seconds") from None


def on_terminal() -> bool:
    """Whether the log goes to a terminal (a bar then replaces the heartbeat lines)."""
    return sys.stderr.isatty()


def duration(seconds: float | None) -> str:
    """`1:02:03`, `2:03` or `0:05`; `?` when unknown."""
    if seconds is None or seconds != seconds or seconds < 0:
        return "?"
    s = int(round(seconds))
    h, m = divmod(s // 60, 60)
    return f"{h}:{m:02d}:{s % 60:02d}" if h else f"{m}:{s % 60:02d}"


class Progress:
    """A tqdm bar on a tty, heartbeat lines otherwise; `update` after every step.

    Rates count from the end of the first step of this process's epoch, so a compile inside
    that step does not skew the images/s and the ETA."""

    def __init__(self, total: int, desc: str, *, start: int = 0, tty: bool | None = None,
                 heartbeat: float | None = None):
        self.total, self.desc, self.bar = total, desc, None
        self.tty = on_terminal() if tty is None else tty
        self.heartbeat = heartbeat_seconds() if heartbeat is None else heartbeat
        self.steps = self.images = 0
        self._t_first: float | None = None
        self._images_first = 0
        self._last_beat = time.monotonic()
        if self.tty:
            from tqdm import tqdm
            self.bar = tqdm(total=total, initial=start, desc=desc, leave=False,
                            dynamic_ncols=True)

    @property
    def active(self) -> bool:
        """Whether a bar draws (callers then skip their own per-step log lines)."""
        return self.bar is not None

    def update(self, *, step: int, images: int, loss: Any = None) -> None:
        """After step `step` (0-based, of `total`), which took `images` images; `loss` (a
        device scalar) is read back only when shown."""
        now = time.monotonic()
        self.steps += 1
        self.images += images
        if self._t_first is None:
            self._t_first, self._images_first = now, self.images
            self._last_beat = now
        if self.bar is not None:
            if loss is not None:
                self.bar.set_postfix(loss=f"{float(loss):.3f}", refresh=False)
            self.bar.update()
        elif self.heartbeat and now - self._last_beat >= self.heartbeat:
            self._last_beat = now
            log.info("%s: %s", self.desc, self.line(step, loss))

    def rate(self) -> tuple[float, float] | None:
        """(steps/s, images/s) since the first step, once there is a second one."""
        if self._t_first is None or self.steps < 2:
            return None
        dt = max(time.monotonic() - self._t_first, 1e-9)
        return (self.steps - 1) / dt, (self.images - self._images_first) / dt

    def line(self, step: int, loss: Any = None) -> str:
        rate = self.rate()
        parts = [f"step {step + 1}/{self.total}"]
        if rate:
            parts.append(f"{rate[1]:.0f} img/s")
        if loss is not None:
            parts.append(f"loss {float(loss):.4f}")
        eta = (self.total - step - 1) / rate[0] if rate else None
        parts.append(f"epoch ETA {duration(eta)}")
        return ", ".join(parts)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
