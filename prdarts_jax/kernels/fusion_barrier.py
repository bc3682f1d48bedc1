"""A fusion barrier: makes XLA:CPU compute a value (and its cotangent) into a buffer of its own.

XLA:CPU fuses cheap elementwise producers into every consumer, recomputing them there. In a
supernet that is ruinous: a node (the sum of a dozen op outputs, each a BatchNorm of a matmul or
a pool) feeds every op of the next edges, and the same node sum was recomputed inside each of
them; backward, the input gradients of all depthwise convs of a node (hundreds of shifted slices)
became one fusion several times slower than the same work in separate fusions. `jax.lax.
optimization_barrier` does not help: XLA:CPU removes it before fusion.

:func:`materialize` passes the value through a `lax.cond` whose predicate XLA cannot fold (it
reads the value). XLA never fuses across a conditional, so the value is computed once into a
buffer. Both branches multiply by one: XLA simplifies that to forwarding the buffer, but only
after it has decided to keep the conditional (branches that are the identity from the start get
the conditional removed). JAX transposes the cond into another one, which does the same for the
cotangent. Both branches compute the identity, so the result is exact whatever the predicate.
:func:`isolate` puts a whole call into such a branch.

Only on CPU: elsewhere (GPU, TPU) a conditional costs a device-to-host sync, and their fusion
heuristics do not have the problem. `PRDARTS_FUSION_BARRIERS=0` turns the barriers off (for
measuring them).
"""

from __future__ import annotations

import os
from typing import Callable

import jax
from jax import lax

__all__ = ["ENV_VAR", "enabled", "isolate", "materialize"]

ENV_VAR = "PRDARTS_FUSION_BARRIERS"


def enabled(backend: str | None = None) -> bool:
    """Whether :func:`materialize` and :func:`isolate` place barriers for ``backend`` (default:
    JAX's default backend)."""
    flag = os.environ.get(ENV_VAR, "").strip().lower()
    if flag in ("0", "false", "no", "off"):
        return False
    if flag not in ("", "1", "true", "yes", "on"):
        raise ValueError(f"{ENV_VAR}={flag!r} is not a switch; use 1 or 0")
    return (backend or jax.default_backend()).lower() == "cpu"


def _first_is_number(x: jax.Array) -> jax.Array:
    """A predicate XLA cannot fold: it reads the data (false only for NaN)."""
    first = x.reshape(-1)[0]
    return first == first


def _times_one(v: jax.Array) -> jax.Array:
    return v * 1


def materialize(x: jax.Array, backend: str | None = None) -> jax.Array:
    """``x``, computed once into its own buffer (forward and backward) on XLA:CPU; else ``x``."""
    if x.size == 0 or not enabled(backend):
        return x
    return lax.cond(_first_is_number(x), _times_one, _times_one, x)


def isolate(fn: Callable[..., jax.Array], fallback: Callable[..., jax.Array], *args: jax.Array,
            backend: str | None = None) -> jax.Array:
    """``fn(*args)``, compiled on XLA:CPU as a program part of its own; else plain ``fn(*args)``.

    The call sits in a branch of a conditional, so XLA fuses and schedules it apart from the
    rest of the program and its output is a buffer of its own. That also keeps its
    instructions out of the main computation, whose fusion pass needs memory quadratic in its
    instruction count (a reachability matrix): a paper-scale supernet whose depthwise convs are
    written as shifted slices peaked at 20 GB while compiling without this.

    The predicate is "the first element of ``args[0]`` is a number"; the other branch,
    ``fallback``, runs only when it is NaN and must compute the same function (written
    compactly, as it is compiled too).
    """
    if not enabled(backend) or args[0].size == 0:
        return fn(*args)
    return lax.cond(_first_is_number(args[0]), fn, fallback, *args)
