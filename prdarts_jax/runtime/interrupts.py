"""Stopping a run cleanly on SIGTERM/SIGINT, and the fault-injection hooks of the resume tests.

`StopFlag` records the signal; the loops finish the current step, save, and raise. The hooks
kill the process with SIGKILL (nothing runs after it, like a crash or the OOM killer):
PRDARTS_FAULT_AT="a,b,c" at that loop position (search: cycle, epoch, step; retraining: epoch,
step), PRDARTS_FAULT_IN_SAVE=<checkpoint number> in the middle of that save, after its files are
written and before orbax commits them. PRDARTS_FAULT_SIGNAL=TERM (or INT) sends that signal
instead of SIGKILL at PRDARTS_FAULT_AT, as a scheduler or Ctrl-C would.
"""

from __future__ import annotations

import os
import signal
import threading


class StopFlag:
    """Context manager: while active, SIGTERM/SIGINT set `signal` instead of killing."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._saved: dict = {}

    def __enter__(self) -> "StopFlag":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._saved[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        del frame
        self.signal = signum

    def __exit__(self, *exc) -> None:
        for sig, handler in self._saved.items():
            signal.signal(sig, handler)


def _kill(name: str = "KILL") -> None:
    os.kill(os.getpid(), getattr(signal, f"SIG{name}"))


def kill_at(*position: int) -> None:
    """Test hook: SIGKILL (or PRDARTS_FAULT_SIGNAL) when PRDARTS_FAULT_AT names `position`."""
    at = os.environ.get("PRDARTS_FAULT_AT")
    if at and tuple(int(v) for v in at.split(",")) == position:
        _kill(os.environ.get("PRDARTS_FAULT_SIGNAL", "KILL"))


def arm_kill_in_save(number: int) -> None:
    """Test hook: if PRDARTS_FAULT_IN_SAVE names checkpoint `number`, the save about to start
    dies once its files are written but before they are committed (renamed into place)."""
    if os.environ.get("PRDARTS_FAULT_IN_SAVE") != str(number):
        return
    from orbax.checkpoint._src.path import atomicity

    async def finalize(self, *args, **kwargs):
        del self, args, kwargs
        _kill()

    atomicity.AtomicRenameTemporaryPath.finalize = finalize
