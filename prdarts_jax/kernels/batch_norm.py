"""BatchNorm without affine: the training mode's normalisation and running statistics' update,
and the evaluation mode's normalisation, with interchangeable formulations
(`primitives.IMPLS["batch_norm"]`).

``"xla"``: jnp, with a hand-written backward (one pass for the two channel sums of the
cotangent, one for the input gradient, instead of autodiff's chain through the mean and the
variance); XLA computes the running statistics' moments once with the normalisation's (CSE).
XLA:CPU builds this as about seven kernels per BatchNorm, compiled apart for each of the
supernet's hundreds of BatchNorms: half of a search's gradient program.

``"native"``: on the CPU, for float32, one call of a compiled C++ kernel forward and one
backward (`native_kernels`, ``native/batch_norm.cc``; in evaluation mode one call), which XLA
has nothing to compile for; the channel sums are kept in double precision. Same results as
``"xla"`` to float32 rounding. Elsewhere (another backend or dtype, no C++ compiler) it computes as ``"xla"``.

Semantics are PyTorch's: biased variance for the normalisation, unbiased for the running
variance, `momentum` the old value's weight (0.9 here is PyTorch's 0.1).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

from prdarts_jax.kernels import native_kernels
from prdarts_jax.kernels.primitives import default_impl

__all__ = ["batch_moments", "normalize_eval", "normalize_train"]


def batch_moments(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Mean and biased variance over all axes but the last."""
    axes = tuple(range(x.ndim - 1))
    mean = jnp.mean(x, axes)
    return mean, jnp.mean(jnp.square(x - mean), axes)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def _normalize(x: jax.Array, eps: float) -> jax.Array:
    """``x`` normalized with its own batch statistics."""
    return _normalize_fwd(x, eps)[0]


def _normalize_fwd(x: jax.Array, eps: float) -> tuple[jax.Array, tuple]:
    mean, var = batch_moments(x)
    inv = jax.lax.rsqrt(var + eps)
    return (x - mean) * inv, (x, mean, inv)


def _normalize_bwd(eps: float, res: tuple, g: jax.Array) -> tuple[jax.Array]:
    del eps
    x, mean, inv = res
    axes = tuple(range(x.ndim - 1))
    n = math.prod(x.shape[:-1])
    xhat = (x - mean) * inv
    g_mean = jnp.sum(g, axes) / n
    gx_mean = jnp.sum(g * xhat, axes) / n
    return (inv * (g - g_mean - xhat * gx_mean),)


_normalize.defvjp(_normalize_fwd, _normalize_bwd)


def _xla(x, ra_mean, ra_var, momentum, eps):
    y = _normalize(x, eps)
    mean, var = batch_moments(jax.lax.stop_gradient(x))
    n = math.prod(x.shape[:-1])
    unbiased = var * (n / max(n - 1, 1))
    return (y, momentum * ra_mean + (1 - momentum) * mean,
            momentum * ra_var + (1 - momentum) * unbiased)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def _native(x, ra_mean, ra_var, momentum, eps):
    return _native_fwd(x, ra_mean, ra_var, momentum, eps)[0]


def _native_fwd(x, ra_mean, ra_var, momentum, eps):
    flat = x.reshape(-1, x.shape[-1])
    y, mean, inv, new_mean, new_var = native_kernels.batch_norm_forward(
        flat, ra_mean, ra_var, momentum, eps)
    return (y.reshape(x.shape), new_mean, new_var), (flat, mean, inv)


def _native_bwd(momentum, eps, res, cotangents):
    del momentum, eps
    flat, mean, inv = res
    g = cotangents[0]
    dx = native_kernels.batch_norm_backward(g.reshape(flat.shape), flat, mean, inv)
    # the running statistics are state, not a function of the loss: no gradient flows there
    return dx.reshape(g.shape), jnp.zeros_like(mean), jnp.zeros_like(inv)


_native.defvjp(_native_fwd, _native_bwd)


def normalize_train(x: jax.Array, ra_mean: jax.Array, ra_var: jax.Array, *, momentum: float,
                    eps: float, impl: str | None = None
                    ) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(x normalized with its own batch statistics, the updated running mean, the updated
    running variance). `impl` None: the formulation in use (`primitives.use_impls`)."""
    impl = default_impl("batch_norm") if impl is None else impl
    if impl == "native" and native_kernels.use_for(x, ra_mean, ra_var):
        return _native(x, jax.lax.stop_gradient(ra_mean), jax.lax.stop_gradient(ra_var),
                       momentum, eps)
    return _xla(x, ra_mean, ra_var, momentum, eps)


def _eval_xla(x, ra_mean, ra_var, eps):
    return (x - ra_mean) * jax.lax.rsqrt(ra_var + eps)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _eval_native(x, ra_mean, ra_var, eps):
    flat = x.reshape(-1, x.shape[-1])
    return native_kernels.batch_norm_inference(flat, ra_mean, ra_var, eps).reshape(x.shape)


def _eval_native_fwd(x, ra_mean, ra_var, eps):
    return _eval_native(x, ra_mean, ra_var, eps), (x, ra_mean, ra_var)


def _eval_native_bwd(eps, res, g):
    x, ra_mean, ra_var = res
    _, vjp = jax.vjp(lambda *a: _eval_xla(*a, eps), x, ra_mean, ra_var)
    return vjp(g)


_eval_native.defvjp(_eval_native_fwd, _eval_native_bwd)


def normalize_eval(x: jax.Array, ra_mean: jax.Array, ra_var: jax.Array, *, eps: float,
                   impl: str | None = None) -> jax.Array:
    """x normalized with the running statistics (evaluation mode). `impl` None: the formulation
    in use; ``"native"`` is one call of a C++ kernel on the CPU (its gradient, rarely wanted,
    is XLA's)."""
    impl = default_impl("batch_norm") if impl is None else impl
    if impl == "native" and native_kernels.use_for(x, ra_mean, ra_var):
        return _eval_native(x, ra_mean, ra_var, eps)
    return _eval_xla(x, ra_mean, ra_var, eps)
