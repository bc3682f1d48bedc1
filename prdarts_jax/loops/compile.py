"""Compiling a program that runs once (an initialiser) without XLA's optimisation passes."""

from __future__ import annotations

from typing import Any, Callable

import jax


def compile_unoptimized(fn: Callable[..., Any], *example_args: Any) -> Callable[..., Any]:
    """`jax.jit(fn)` compiled for `example_args` at XLA backend optimisation level 0: the
    optimised compile of hundreds of random initialisers costs minutes on a small CPU, and the
    program runs once."""
    return jax.jit(fn).trace(*example_args).lower().compile(
        compiler_options={"xla_backend_optimization_level": 0})
