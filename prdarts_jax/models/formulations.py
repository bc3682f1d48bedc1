"""How the backend computes what the models describe: the one switch.

The models are written as the paper's math; `kernels/` holds the interchangeable formulations
(XLA's native ops, shifted slices, native CPU kernels, fusion barriers) and picks the fastest per
backend. Callers above the models choose here, never in `kernels/` directly.
"""

from __future__ import annotations

import jax

from prdarts_jax.kernels.fusion_barrier import materialize
from prdarts_jax.kernels.primitives import IMPLS, default_impl, use_impls
from prdarts_jax.kernels.sgd_update import native_sgd_update
from prdarts_jax.kernels.weighted_sum import weighted_sum

__all__ = ["IMPLS", "default_impl", "in_force", "native_setting", "native_sgd_update",
           "node_state", "prepare", "use_impls", "weighted_sum"]


def native_setting() -> tuple:
    """What decides, without building anything, whether traced programs call the native CPU
    kernels here: the backend, `PRDARTS_NATIVE_KERNELS` and the C++ compiler found."""
    from prdarts_jax.kernels import native_kernels
    return jax.default_backend(), native_kernels.mode(), native_kernels.compiler()


def in_force() -> tuple:
    """What, besides an op's configuration and input, decides what tracing it gives: the
    formulation of every primitive now (`use_impls`, the environment, the backend's default)
    and `native_setting()`."""
    return (*(default_impl(p) for p in IMPLS), *native_setting())


def prepare() -> None:
    """Makes the native CPU kernels callable in this process (building and registering them
    where they serve): a program compiled elsewhere that calls them (`loops/program_store.py`)
    runs only once they are registered."""
    from prdarts_jax.kernels import native_kernels
    if jax.default_backend() == "cpu":
        native_kernels.available()


def node_state(x: jax.Array) -> jax.Array:
    """A cell state (a cell input or node sum) that many edges read, computed once for all of
    them. The value is `x` exactly; on XLA:CPU it is kept in a buffer of its own (a fusion
    barrier, `kernels/fusion_barrier.py`), elsewhere it passes through."""
    return materialize(x)
