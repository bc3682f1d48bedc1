"""Stopping a run cleanly on SIGTERM/SIGINT, and the one hook through which the resume tests
make a run die.

`StopFlag` records the signal; the loops finish the current step, save, and raise. A `FaultHook`
kills the process with SIGKILL (nothing runs after it, like a crash or the OOM killer) at a loop
position (search: cycle, epoch, step; retraining: epoch, step) or in the middle of one save,
after its files are written and before orbax commits them; it can send SIGTERM or SIGINT
instead at the position, as a scheduler or Ctrl-C would. Library calls get `NO_FAULTS`; the
CLIs build theirs from the environment (`FaultHook.from_environ`): PRDARTS_FAULT_AT="a,b,c",
PRDARTS_FAULT_IN_SAVE=<checkpoint number>, PRDARTS_FAULT_SIGNAL=TERM|INT.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
from typing import Mapping


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


@dataclasses.dataclass(frozen=True)
class FaultHook:
    """Where a run is made to die: `at` a loop position (with `signal_name`, KILL by default),
    and/or in the save of checkpoint number `in_save`. The default hook does nothing."""

    at_position: tuple[int, ...] | None = None
    signal_name: str = "KILL"
    in_save: int | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> "FaultHook":
        env = os.environ if environ is None else environ
        at = env.get("PRDARTS_FAULT_AT")
        in_save = env.get("PRDARTS_FAULT_IN_SAVE")
        return cls(at_position=tuple(int(v) for v in at.split(",")) if at else None,
                   signal_name=env.get("PRDARTS_FAULT_SIGNAL", "KILL"),
                   in_save=int(in_save) if in_save else None)

    def at(self, *position: int) -> None:
        """Called by the epoch driver before each step."""
        if self.at_position == position:
            _kill(self.signal_name)

    def before_save(self, number: int) -> None:
        """Called by the checkpointer before it saves checkpoint `number`: if it is `in_save`,
        that save dies once its files are written but before they are committed (renamed)."""
        if self.in_save != number:
            return
        from orbax.checkpoint._src.path import atomicity

        async def finalize(self, *args, **kwargs):
            del self, args, kwargs
            _kill()

        atomicity.AtomicRenameTemporaryPath.finalize = finalize


NO_FAULTS = FaultHook()
