"""The search's weight update as a few native calls (`primitives.IMPLS["sgd_update"]`).

``"xla"``: optax's chain (`optim.sgd`), which XLA:CPU builds as two kernels per parameter leaf
(the global norm's reduction, the update), compiled apart: a few seconds of every cycle's
compile for a program that runs in microseconds. ``"native"``: on the CPU, for float32, two calls
of compiled C++ kernels (``native/sgd.cc``) per group of `GROUP` leaves, the sum of
squares and the update, which XLA has nothing to compile for (groups, because XLA's compile time
grows faster than linearly with one call's number of operands: 547 leaves in one call took 4.7
s). It computes the same float32 operations in the same order; only the global norm's sum
differs (double precision, another order), so the two agree to rounding when the gradient is
clipped and exactly otherwise. Elsewhere it is the chain.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from prdarts_jax.kernels import native_kernels
from prdarts_jax.kernels.primitives import default_impl

__all__ = ["GROUP", "native_sgd_update"]

GROUP = 64
"""Leaves per native call (compile 0.03 s for 64 leaves; 0.3 s for 200, 12 s for 800)."""


def native_sgd_update(params: Any, momenta: Any, grads: Any, lr: jax.Array, *,
                      momentum: float, weight_decay: float, grad_clip: float
                      ) -> tuple[Any, Any] | None:
    """(params', momenta') of PyTorch's SGD step (clip by global norm, coupled weight decay,
    momentum, then ``p - lr * m``) through the native kernel, or None where the formulation in
    force is not ``"native"`` or the kernel cannot serve these arrays (then use the chain)."""
    if default_impl("sgd_update") != "native":
        return None
    p, treedef = jax.tree.flatten(params)
    m, g = treedef.flatten_up_to(momenta), treedef.flatten_up_to(grads)
    if not p or not native_kernels.use_for(*p, *m, *g):
        return None
    groups = [slice(i, i + GROUP) for i in range(0, len(p), GROUP)]
    norm = jnp.sqrt(sum(native_kernels.sum_squares(g[s]) for s in groups))
    new_p, new_m = [], []
    for s in groups:
        pg, mg = native_kernels.sgd_update(lr, norm, p[s], m[s], g[s], momentum=momentum,
                                           weight_decay=weight_decay, grad_clip=grad_clip)
        new_p += pg
        new_m += mg
    return treedef.unflatten(new_p), treedef.unflatten(new_m)
