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
from typing import Any, Mapping


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
    in the save of checkpoint number `in_save` (files written, not committed), or as the save of
    number `at_save` starts (a multi-process job: the other processes write their part alone).
    `check_replicas` makes every step assert that the state is the same on every device and
    process (`after_step`). The default hook does nothing."""

    at_position: tuple[int, ...] | None = None
    signal_name: str = "KILL"
    in_save: int | None = None
    at_save: int | None = None
    check_replicas: bool = False

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> "FaultHook":
        env = os.environ if environ is None else environ
        at = env.get("PRDARTS_FAULT_AT")
        in_save, at_save = env.get("PRDARTS_FAULT_IN_SAVE"), env.get("PRDARTS_FAULT_AT_SAVE")
        return cls(at_position=tuple(int(v) for v in at.split(",")) if at else None,
                   signal_name=env.get("PRDARTS_FAULT_SIGNAL", "KILL"),
                   in_save=int(in_save) if in_save else None,
                   at_save=int(at_save) if at_save else None,
                   check_replicas=env.get("PRDARTS_CHECK_REPLICAS", "") == "1")

    def at(self, *position: int) -> None:
        """Called by the epoch driver before each step."""
        if self.at_position == position:
            _kill(self.signal_name)

    def after_step(self, tree: Any) -> None:
        """Called after each step with what must be replicated (α, the weights): with
        `check_replicas`, asserts that every device's copy is the same, and across processes
        (a collective: test runs only)."""
        if not self.check_replicas:
            return
        import jax
        import numpy as np
        local = []
        for leaf in jax.tree.leaves(tree):
            shards = [np.asarray(s.data) for s in leaf.addressable_shards]
            if not all(np.array_equal(shards[0], x) for x in shards[1:]):
                raise AssertionError("a replicated array differs between this process's devices")
            local.append(shards[0])
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils
            multihost_utils.assert_equal(local, "the replicated state differs between processes")

    def before_save(self, number: int) -> None:
        """Called by the checkpointer before it saves checkpoint `number`: if it is `at_save`,
        the process dies now; if it is `in_save`, that save dies once its files are written but
        before they are committed (renamed)."""
        if self.at_save == number:
            _kill(self.signal_name)
        if self.in_save != number:
            return
        from orbax.checkpoint._src.path import atomicity

        async def finalize(self, *args, **kwargs):
            del self, args, kwargs
            _kill()

        atomicity.AtomicRenameTemporaryPath.finalize = finalize


NO_FAULTS = FaultHook()
