"""Compiling: a program that runs once (an initialiser) without XLA's optimisation passes, and
the lines that tell the user a compile is under way and what it cost."""

from __future__ import annotations

import contextlib
import logging
import weakref
from typing import Any, Callable, Iterator

import jax

from prdarts_jax.runtime import compile_timer

log = logging.getLogger("prdarts_jax")


def compile_unoptimized(fn: Callable[..., Any], *example_args: Any) -> Callable[..., Any]:
    """`jax.jit(fn)` compiled for `example_args` at XLA backend optimisation level 0: the
    optimised compile of hundreds of random initialisers costs minutes on a small CPU, and the
    program runs once."""
    return jax.jit(fn).trace(*example_args).lower().compile(
        compiler_options={"xla_backend_optimization_level": 0})


_USED: "weakref.WeakSet[Any]" = weakref.WeakSet()


def first_use(program: Any) -> bool:
    """True the first time this process asks about `program` (a jitted function): its first
    call compiles (or loads it from the persistent cache)."""
    if program in _USED:
        return False
    _USED.add(program)
    return True


@contextlib.contextmanager
def announced(what: str, expected: bool = True) -> Iterator[None]:
    """Logs `compiling <what>…` before the block (when a compile is `expected` in it) and the
    compile seconds spent inside it after (when there were any): a first step that takes a
    minute says why."""
    if expected:
        log.info("compiling %s…", what)
    c0 = compile_timer.total_seconds()
    yield
    spent = compile_timer.total_seconds() - c0
    if expected or spent >= compile_timer.LOG_ABOVE_SECONDS:
        log.info("compiled %s in %.1f s", what, spent)
