"""The variable batch size of the search (SPEC §5, paper §3.3): a pure controller.

The batch size lives on the grid b_min + n·b_mult (n ≥ 0), at most b_max; each cycle starts at
b_min. Every `interval` steps the caller reports the peak memory in use as a fraction `usage`
of the budget; assuming memory grows linearly with b, the controller moves to

    b' = grid_floor(min(floor(target·b / usage), 2·b, b_max, ceiling − 1))

and keeps b when b' < b: b never shrinks within a cycle, except on out-of-memory. `grid_floor`
rounds down to the grid (the largest b_min + n·b_mult not above its argument). b_max itself need
not be on the grid: the largest batch size is `grid_floor(b_max)`, which is what the paper's
"b_min + n·b_mult, limited by b_max" means.

Out of memory (`on_oom`): the failed size becomes a ceiling for the rest of the cycle (b never
grows to it or past it again) and b steps back to the last size that completed a step, if that is
smaller; otherwise (the failed size had worked before) one grid step down. At b_min there is
nothing to step back to and `BatchSizeError` is raised.

Linear extrapolation through the origin over-estimates the memory of a larger batch whenever
part of the memory (weights, the dataset) does not grow with b, so the rule errs on the safe side.
The state is a frozen dataclass with a JSON form, so a resumed search continues with the same b.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any, Mapping

_EPS = 1e-9
"""Slack for floor(target·b/usage): 0.95·24/0.30 is 75.999… in floating point, 76 exactly."""


class BatchSizeError(RuntimeError):
    """Out of memory at the smallest batch size: nothing left to step back to."""


@dataclasses.dataclass(frozen=True)
class BatchSizeState:
    """Where the controller stands in the current cycle.

    `b`: the batch size of the next step. `steps_since_probe`: steps completed since the last
    resize decision. `last_ok`: the size of the last step that completed in this cycle (None
    before the first). `ceiling`: the smallest size that ran out of memory in this cycle (None
    if none did); b stays below it.
    """

    b: int
    b_min: int
    b_mult: int
    b_max: int
    interval: int = 5
    target: float = 0.95
    steps_since_probe: int = 0
    last_ok: int | None = None
    ceiling: int | None = None

    def __post_init__(self) -> None:
        validate_limits(self.b_min, self.b_mult, self.b_max, self.interval, self.target)
        for name in ("b", "b_min", "b_mult", "b_max", "interval", "steps_since_probe"):
            object.__setattr__(self, name, int(getattr(self, name)))
        object.__setattr__(self, "target", float(self.target))
        if not self.on_grid(self.b) or not self.b_min <= self.b <= self.top:
            raise ValueError(f"batch size {self.b} is not on the grid {self.b_min} + n·"
                             f"{self.b_mult} up to {self.top}")
        if self.steps_since_probe < 0:
            raise ValueError(f"steps_since_probe must be >= 0, got {self.steps_since_probe}")
        if self.ceiling is not None and self.ceiling <= self.b:
            raise ValueError(f"ceiling {self.ceiling} must exceed the batch size {self.b}")

    @property
    def top(self) -> int:
        """The largest batch size: the grid value at or below b_max."""
        return self.grid_floor(self.b_max)

    def on_grid(self, x: int) -> bool:
        return x >= self.b_min and (x - self.b_min) % self.b_mult == 0

    def grid_floor(self, x: float) -> int:
        """The largest grid size ≤ x; b_min when x is below it."""
        if x < self.b_min:
            return self.b_min
        return self.b_min + (math.floor(x) - self.b_min) // self.b_mult * self.b_mult

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> "BatchSizeState":
        return BatchSizeState(**dict(d))


def _is_int(x: Any) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def validate_limits(b_min: int, b_mult: int, b_max: int, interval: int = 5,
                    target: float = 0.95) -> None:
    """One-line ValueError naming the config key of the first bad value."""
    if not _is_int(b_min) or b_min < 1:
        raise ValueError(f"config.batch.min must be an integer >= 1, got {b_min!r}")
    if not _is_int(b_mult) or b_mult < 1:
        raise ValueError(f"config.batch.step must be an integer >= 1, got {b_mult!r}")
    if not _is_int(b_max) or b_max < b_min:
        raise ValueError(f"config.batch.max must be an integer >= config.batch.min ({b_min}), "
                         f"got {b_max!r}")
    if not _is_int(interval) or interval < 1:
        raise ValueError(f"config.batch.interval must be an integer >= 1, got {interval!r}")
    if not isinstance(target, numbers.Real) or not 0 < target <= 1:
        raise ValueError(f"config.batch.target must be in (0, 1], got {target!r}")


def initial_state(b_min: int, b_mult: int, b_max: int, interval: int = 5,
                  target: float = 0.95) -> BatchSizeState:
    """A controller at the start of a cycle: b = b_min."""
    return BatchSizeState(b_min, b_min, b_mult, b_max, interval, target)


def start_cycle(state: BatchSizeState) -> BatchSizeState:
    """Back to b_min; the ceiling and the last working size are forgotten (new structure)."""
    return dataclasses.replace(state, b=state.b_min, steps_since_probe=0, last_ok=None,
                               ceiling=None)


def should_probe(state: BatchSizeState) -> bool:
    """Whether the step about to run completes an interval, so its memory should be read."""
    return state.steps_since_probe + 1 >= state.interval


def proposed_size(state: BatchSizeState, usage: float) -> int:
    """The rule's size for the current b at peak memory fraction `usage` (not yet max'ed with b)."""
    if not usage > 0 or math.isnan(usage):
        raise ValueError(f"memory usage must be a fraction > 0, got {usage!r}")
    limit = min(state.target * state.b / usage * (1 + _EPS), 2 * state.b, state.b_max)
    if state.ceiling is not None:
        limit = min(limit, state.ceiling - 1)
    return state.grid_floor(limit)


def after_step(state: BatchSizeState, usage: float | None) -> BatchSizeState:
    """A step at state.b completed; `usage` is its memory reading (None: not read/unavailable).

    The size changes only when an interval is complete and a reading is given; a missing
    reading leaves the interval open, so the next step is probed again.
    """
    steps = state.steps_since_probe + 1
    state = dataclasses.replace(state, steps_since_probe=steps, last_ok=state.b)
    if usage is None or steps < state.interval:
        return state
    return dataclasses.replace(state, b=max(state.b, proposed_size(state, usage)),
                               steps_since_probe=0)


def predicted_sizes(state: BatchSizeState, usage: float) -> list[int]:
    """The sizes the controller will move to from `state` (just after a reading of `usage` at
    state.b), if memory keeps growing linearly in b: each later reading is then
    usage·b'/b. For compiling those sizes ahead of time; empty when b will stay."""
    sizes, b = [], state.b
    while True:
        nxt = max(b, proposed_size(dataclasses.replace(state, b=b), usage * b / state.b))
        if nxt == b:
            return sizes
        sizes.append(nxt)
        b = nxt


def on_oom(state: BatchSizeState) -> BatchSizeState:
    """A step at state.b ran out of memory: step back and never reach that size again this cycle.

    The caller re-runs the failed step at the returned size.
    """
    failed = state.b
    if state.last_ok is not None and state.last_ok < failed:
        b, last_ok = state.last_ok, state.last_ok
    elif failed > state.b_min:
        b, last_ok = state.grid_floor(failed - 1), None
    else:
        raise BatchSizeError(f"out of memory at the smallest batch size {failed}; lower "
                             "config.batch.min or the supernet size (config.channels, "
                             "config.layers or config.schedule.cells)")
    return dataclasses.replace(state, b=b, steps_since_probe=0, last_ok=last_ok, ceiling=failed)


def is_oom(err: BaseException) -> bool:
    """Whether `err` (or an exception it was raised from) is XLA running out of device memory.

    XLA reports it as a runtime error (`jax.errors.JaxRuntimeError`, formerly
    `XlaRuntimeError`) whose message starts with RESOURCE_EXHAUSTED or says "Out of memory".
    Matched by class name, so this module needs no JAX.
    """
    seen: set[int] = set()
    e: BaseException | None = err
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        names = {c.__name__ for c in type(e).__mro__}
        if names & {"JaxRuntimeError", "XlaRuntimeError"}:
            text = str(e)
            if "RESOURCE_EXHAUSTED" in text or "out of memory" in text.lower():
                return True
        e = e.__cause__ or e.__context__
    return False
