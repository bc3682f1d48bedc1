"""Seconds spent tracing, lowering and compiling XLA programs, from JAX's own monitoring events.

The search reports them per epoch (`compile_seconds` in metrics.jsonl): on a small CPU they are
most of a cycle's first epoch. The loops announce each compile (`loops.compile.announced`);
the per-program XLA times are logged at debug level.
"""

from __future__ import annotations

import logging
import threading

import jax

EVENTS = ("/jax/core/compile/jaxpr_trace_duration",
          "/jax/core/compile/jaxpr_to_mlir_module_duration",
          "/jax/core/compile/backend_compile_duration")

LOG_ABOVE_SECONDS = 1.0
log = logging.getLogger("prdarts_jax")
_lock = threading.Lock()
_total = [0.0]
_registered = [False]


def _listener(event: str, duration: float, **kwargs) -> None:
    if event in EVENTS:
        with _lock:
            _total[0] += duration
        if event == EVENTS[-1] and duration >= LOG_ABOVE_SECONDS:
            log.debug("XLA compiled %s in %.1f s", kwargs.get("fun_name", "a program"),
                      duration)


def total_seconds() -> float:
    """Compile seconds of this process so far (starts counting at the first call)."""
    if not _registered[0]:
        jax.monitoring.register_event_duration_secs_listener(_listener)
        _registered[0] = True
    with _lock:
        return _total[0]
