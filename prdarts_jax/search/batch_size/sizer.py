"""The batch size of each search step: fixed, or the paper's memory-driven controller (SPEC §5).

`BatchSizer` joins the pure controller (`controller.py`), the memory probe (`memory.py`) and the
per-size executables (`executables.py`, compiled ahead for the sizes the controller may pick).
"""

from __future__ import annotations

import logging
from typing import Any, Callable

import ml_collections

from prdarts_jax.search.batch_size import controller, memory

log = logging.getLogger("prdarts_jax")

ArgsFor = Callable[[int], tuple[Any, ...]]
"""batch size -> example arguments of the gradient programs at that size."""


class BatchSizer:
    """The current batch size `b`, updated after every step; an OOM steps it back."""

    def __init__(self, config: ml_collections.ConfigDict,
                 state: controller.BatchSizeState | None):
        self.variable = bool(config.batch.variable)
        self.state = state
        self.fixed = config.batch_size
        self.probe = None
        self.last_usage: float | None = None
        self._usage: dict = {}
        if self.variable:
            budget = int(config.batch.memory_budget_mb * 2**20) or None
            self.probe = memory.make_probe(budget_bytes=budget)

    @classmethod
    def initial(cls, config: ml_collections.ConfigDict) -> "BatchSizer":
        """A fresh search's sizer: the controller at b_min when the batch size varies."""
        b = config.batch
        state = (controller.initial_state(b.min, b.step, b.max, b.interval, b.target)
                 if b.variable else None)
        return cls(config, state)

    @property
    def b(self) -> int:
        return self.state.b if self.variable else self.fixed

    def to_json(self) -> dict | None:
        return self.state and self.state.to_json()

    def start_cycle(self) -> None:
        if self.variable:
            self.state = controller.start_cycle(self.state)
            self._usage.clear()
            if self.probe is not None:
                self.probe.reset()

    def after_step(self, programs: Any, args_for: ArgsFor) -> None:
        """Reads the memory usage when the controller asks, compiles ahead the sizes it may
        pick next, and moves `b`."""
        if not self.variable:
            return
        usage = None
        if controller.should_probe(self.state):
            usage = self._read_usage(programs, args_for)
        old = self.state.b
        if usage is not None:
            self.last_usage = usage
            ahead = controller.predicted_sizes(self.state, usage)
            for program in {id(p): p for p in (programs.alpha_grads,
                                               programs.weight_grads)}.values():
                program.prefetch(args_for(old), ahead)
        self.state = controller.after_step(self.state, usage)
        if self.state.b != old:
            log.info("batch size %d -> %d (memory usage %.3f)", old, self.state.b, usage)

    def _read_usage(self, programs: Any, args_for: ArgsFor) -> float | None:
        if isinstance(self.probe, memory.CompiledMemoryProbe):
            b = self.state.b
            if b not in self._usage:
                self._usage[b] = self.probe.usage([programs.weight_grads.executable(
                    args_for(b))])
                log.info("memory analysis at batch %d: usage %.4f", b, self._usage[b])
            return self._usage[b]
        # between new peaks the device probe adds the step's own temporaries to what is in use;
        # the executable is the one the step just ran (no compile)
        usage = self.probe.usage([programs.weight_grads.executable(args_for(self.state.b))])
        self.probe.reset()
        return usage

    def on_oom(self, err: BaseException) -> None:
        """Steps `b` back after an out-of-memory error; any other error is raised again."""
        if not (self.variable and controller.is_oom(err)):
            raise err
        old = self.state.b
        self.state = controller.on_oom(self.state)
        log.warning("out of memory at batch %d; stepping back to %d", old, self.state.b)
