"""A mixed edge's Σ_i w_i · y_i over its ops' outputs, with interchangeable formulations
(`primitives.IMPLS["weighted_sum"]`).

``"xla"``: the sum as jnp ops. XLA:CPU differentiates it into two kernels per op of every edge
(the op's cotangent w_i · g, and w_i's gradient Σ g · y_i as a reduction padded into the edge's
vector), compiled apart: about half of the supernet gradient program's kernels. ``"native"``:
on the CPU, for float32, one call of a compiled C++ kernel forward and one backward per edge
(`native_kernels`, ``native/weighted_sum.cc``), which XLA has nothing to compile for; the
weights' gradients are summed in double precision. Equal to ``"xla"`` to float32 rounding.
First order only; elsewhere (another backend or dtype, no C++ compiler) it computes as ``"xla"``.
"""

from __future__ import annotations

from typing import Sequence

import jax

from prdarts_jax.kernels import native_kernels
from prdarts_jax.kernels.primitives import default_impl

__all__ = ["weighted_sum"]


@jax.custom_vjp
def _native(w, ys):
    return native_kernels.weighted_sum(w, list(ys))


def _native_fwd(w, ys):
    return _native(w, ys), (w, ys)


def _native_bwd(res, g):
    w, ys = res
    dw, dys = native_kernels.weighted_sum_grad(w, g, list(ys))
    return dw, tuple(dys)


_native.defvjp(_native_fwd, _native_bwd)


def weighted_sum(w: jax.Array, ys: Sequence[jax.Array], impl: str | None = None) -> jax.Array:
    """Σ_i w[i] · ys[i] (`w` of shape (len(ys),), the ys of one shape). `impl` None: the
    formulation in use (`primitives.use_impls`)."""
    impl = default_impl("weighted_sum") if impl is None else impl
    if impl == "native" and native_kernels.use_for(w, *ys):
        return _native(w, tuple(ys))
    return sum(wi * y for wi, y in zip(w, ys))
