"""Seconds spent tracing, lowering and compiling XLA programs, and the persistent cache's hits
and misses, from JAX's own monitoring events.

The search reports them per epoch (`compile_seconds` in metrics.jsonl, and `compile`: seconds
per program and the cache's hits and misses, see `since`): on a small CPU they are most of a
cycle's first epoch. The loops announce each compile (`loops.compile.announced`); the
per-program XLA times are logged at debug level.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import threading

import jax

EVENTS = ("/jax/core/compile/jaxpr_trace_duration",
          "/jax/core/compile/jaxpr_to_mlir_module_duration",
          "/jax/core/compile/backend_compile_duration")
CACHE_EVENTS = {"/jax/compilation_cache/cache_hits": "cache_hits",
                "/jax/compilation_cache/cache_misses": "cache_misses"}
"""A hit: a program loaded from the persistent cache; a miss: one compiled and written to it
(JAX writes only programs that took at least `jax_persistent_cache_min_compile_time_secs`)."""

LOG_ABOVE_SECONDS = 1.0
PROGRAM_ABOVE_SECONDS = 0.1
"""Programs that cost less (JAX's many small helpers: copies, casts, key splits) are summed
under `OTHER` in `since`."""
OTHER = "other"

log = logging.getLogger("prdarts_jax")
_lock = threading.Lock()
_registered = [False]
_thread = threading.local()


@dataclasses.dataclass
class Tally:
    """What this process has spent on compiling so far."""

    seconds: float = 0.0
    programs: dict[str, float] = dataclasses.field(default_factory=dict)
    cache_hits: int = 0
    cache_misses: int = 0
    store_hits: int = 0
    store_misses: int = 0

    def copy(self) -> Tally:
        return dataclasses.replace(self, programs=dict(self.programs))


_tally = Tally()


def program_name(fun_name: str) -> str:
    """`jit(eval_batch)` and `eval_batch` (JAX names a program both ways) → `eval_batch`."""
    m = re.fullmatch(r"(?:jit|pjit)\((.*)\)", fun_name)
    return m.group(1) if m else fun_name


def _add(name: str, seconds: float) -> None:
    with _lock:
        _tally.seconds += seconds
        _tally.programs[name] = _tally.programs.get(name, 0.0) + seconds


def _count(what: str) -> None:
    with _lock:
        setattr(_tally, what, getattr(_tally, what) + 1)


def _duration_listener(event: str, duration: float, **kwargs) -> None:
    if event in EVENTS:
        _add(program_name(str(kwargs.get("fun_name", OTHER))), duration)
        if event == EVENTS[-1]:   # JAX records it in the compiling thread
            _thread.compiles = getattr(_thread, "compiles", 0) + 1
            if duration >= LOG_ABOVE_SECONDS:
                log.debug("XLA compiled %s in %.1f s", kwargs.get("fun_name", "a program"),
                          duration)


def _event_listener(event: str, **kwargs) -> None:
    del kwargs
    if event in CACHE_EVENTS:
        if CACHE_EVENTS[event] == "cache_hits":   # JAX records it in the compiling thread
            _thread.cache_hits = getattr(_thread, "cache_hits", 0) + 1
        _count(CACHE_EVENTS[event])


def _register() -> None:
    if not _registered[0]:
        jax.monitoring.register_event_duration_secs_listener(_duration_listener)
        jax.monitoring.register_event_listener(_event_listener)
        _registered[0] = True


def record(name: str, seconds: float) -> None:
    """Adds `seconds` spent getting the program `name` ready outside JAX's compile events (a
    stored executable loaded, `loops/program_store.py`)."""
    _register()
    _add(name, seconds)


def count(what: str) -> None:
    """One more `store_hits` or `store_misses` (`loops/program_store.py`)."""
    _register()
    _count(what)


COUNTS = ("cache_hits", "cache_misses", "store_hits", "store_misses")


def thread_counts() -> tuple[int, int]:
    """(XLA compiles, persistent-cache hits) in the calling thread so far: whether a compile in
    it built its executable or loaded it from JAX's cache (`loops/program_store.py` stores only
    what was built)."""
    _register()
    return getattr(_thread, "compiles", 0), getattr(_thread, "cache_hits", 0)


def total_seconds() -> float:
    """Compile seconds of this process so far (starts counting at the first call)."""
    return snapshot().seconds


def snapshot() -> Tally:
    """A copy of the tally so far (counting starts at the first call of this module)."""
    _register()
    with _lock:
        return _tally.copy()


def since(before: Tally) -> dict:
    """What was spent after `before` (a `snapshot`), as a metrics record's `compile` entry:
    `programs` (seconds of tracing, lowering and XLA compiling per program; those under
    `PROGRAM_ABOVE_SECONDS` summed as `other`), `cache_hits` and `cache_misses` (JAX's persistent
    cache), `store_hits` and `store_misses` (`loops/program_store.py`: a hit skips tracing)."""
    now = snapshot()
    programs: dict[str, float] = {}
    for name, seconds in now.programs.items():
        spent = seconds - before.programs.get(name, 0.0)
        if spent <= 0.0:
            continue
        key = name if spent >= PROGRAM_ABOVE_SECONDS else OTHER
        programs[key] = programs.get(key, 0.0) + spent
    return {"programs": {k: round(v, 3) for k, v in sorted(programs.items())},
            **{k: getattr(now, k) - getattr(before, k) for k in COUNTS}}


def add(a: dict, b: dict) -> dict:
    """The sum of two `compile` entries (a cycle's from its epochs')."""
    programs = dict(a.get("programs", {}))
    for k, v in b.get("programs", {}).items():
        programs[k] = round(programs.get(k, 0.0) + v, 3)
    return {"programs": dict(sorted(programs.items())),
            **{k: a.get(k, 0) + b.get(k, 0) for k in COUNTS}}
