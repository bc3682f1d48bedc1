"""Depthwise convolution and 3x3 pooling with interchangeable formulations.

XLA lowers grouped (depthwise) convolutions and ``lax.reduce_window`` poolings
to slow generic loops on CPU, where the same maths written as sums/maxima of
shifted slices (or as a dense conv with a diagonal kernel) is several to tens
of times faster, forward and backward.  On GPU/TPU the native ops are served by
the vendor libraries.  Each primitive is therefore one function whose ``impl``
argument picks one of several numerically equivalent formulations (``IMPLS``);
``impl=None`` uses :func:`default_impl` for the current backend, chosen from
``benchmarks/ops.py`` measurements.

Depthwise formulations: ``"grouped"`` (``feature_group_count=C``), ``"dense"``
(dense conv, diagonal ``(k, k, C, C)`` kernel), ``"blockdiag"`` (grouped conv of
``BLOCK_SIZE``-channel diagonal blocks), ``"shift"`` (sum over the ``k * k``
taps of strided shifted slices, differentiated by JAX) and ``"shift_vjp"`` (the
same forward with a hand-written backward: the input gradient as shifted slices
of the dilated cotangent, the kernel gradient as one variadic reduction; on the CPU,
for float32, the conv, its input gradient and its kernel gradient run as compiled native
kernels instead, see `native_kernels`: XLA:CPU runs that reduction as scalar loops; with
``relu_input`` they also apply a preceding ReLU and mask the input gradient by it).
``"shift_vjp"`` is a ``jax.custom_vjp``: any order of reverse mode works, but
forward mode (``jax.jvp``, ``jacfwd``, ``hessian``) does not; use ``"shift"``
for that.  The same holds for the ``"separable"`` average pool at stride 1, whose
backward is written out too (the window sum is its own transpose); use
``"reduce_window"`` for forward mode.

Pool formulations: ``"reduce_window"``, ``"separable"`` (rows then columns of shifted
slices) and ``"native"`` (on the CPU, for float32, one call of a compiled C++ kernel forward
and one backward, which XLA has nothing to compile for; first order only; elsewhere it computes
as ``"reduce_window"``). The BatchNorm's formulations (``"xla"``, ``"native"``) live in
`batch_norm`.

Layout is NHWC throughout.  Depthwise kernels always use the canonical
``(k, k, C)`` layout, whatever the formulation, so parameters and checkpoints do
not depend on it.  Padding follows PyTorch: symmetric ``((k - 1) * dilation) // 2``
zeros for the conv, 1 for the pools (``-inf`` for max, excluded from the count
for average, i.e. ``count_include_pad=False``).

Environment overrides (read whenever a default is resolved, i.e. at trace time;
they win over the per-backend table):

``PRDARTS_DEPTHWISE_IMPL``
    formulation for :func:`depthwise_conv`, one of ``IMPLS["depthwise_conv"]``.
``PRDARTS_POOL_IMPL``
    formulation for :func:`max_pool3` and :func:`avg_pool3`, one of
    ``IMPLS["max_pool3"]``.
``PRDARTS_BN_IMPL``, ``PRDARTS_SGD_IMPL``, ``PRDARTS_EDGE_SUM_IMPL``
    formulation of the BatchNorm (`batch_norm`), the weights' SGD update (`sgd_update`) and a
    mixed edge's weighted sum (`weighted_sum`), each ``"xla"`` or ``"native"``.

Max-pool gradients at ties (equal values inside one window, e.g. after a ReLU)
may be routed differently by the formulations; each is a valid subgradient.
"""

from __future__ import annotations

import contextlib
import functools
import os
from typing import Iterator

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from prdarts_jax.kernels import native_kernels
from prdarts_jax.kernels.fusion_barrier import isolate

__all__ = [
    "IMPLS",
    "avg_pool3",
    "default_impl",
    "depthwise_conv",
    "max_pool3",
    "out_size",
    "use_impls",
]

IMPLS: dict[str, tuple[str, ...]] = {
    "depthwise_conv": ("grouped", "dense", "shift", "shift_vjp", "blockdiag"),
    "max_pool3": ("reduce_window", "separable", "native"),
    "avg_pool3": ("reduce_window", "separable", "native"),
    "batch_norm": ("xla", "native"),
    "sgd_update": ("xla", "native"),
    "weighted_sum": ("xla", "native"),
}

ENV_VARS: dict[str, str] = {
    "depthwise_conv": "PRDARTS_DEPTHWISE_IMPL",
    "max_pool3": "PRDARTS_POOL_IMPL",
    "avg_pool3": "PRDARTS_POOL_IMPL",
    "batch_norm": "PRDARTS_BN_IMPL",
    "sgd_update": "PRDARTS_SGD_IMPL",
    "weighted_sum": "PRDARTS_EDGE_SUM_IMPL",
}

# CPU: fastest forward+backward in benchmarks/ops.py (batch 32, 32x32, C=16 and 64).
# GPU/TPU: the native ops, which cuDNN / the TPU compiler handle well.
_DEFAULTS: dict[str, dict[str, str]] = {
    "cpu": {"depthwise_conv": "shift_vjp", "max_pool3": "separable", "avg_pool3": "separable",
            "batch_norm": "xla", "sgd_update": "xla",
            "weighted_sum": "xla"},
    "gpu": {"depthwise_conv": "grouped", "max_pool3": "reduce_window", "avg_pool3": "reduce_window",
            "batch_norm": "xla", "sgd_update": "xla",
            "weighted_sum": "xla"},
    "tpu": {"depthwise_conv": "grouped", "max_pool3": "reduce_window", "avg_pool3": "reduce_window",
            "batch_norm": "xla", "sgd_update": "xla",
            "weighted_sum": "xla"},
}
_BACKEND_ALIASES = {"cuda": "gpu", "rocm": "gpu"}

BLOCK_SIZE = 8
"""Channel block size of the ``"blockdiag"`` depthwise formulation."""

_DN = ("NHWC", "HWIO", "NHWC")


def _check_impl(primitive: str, impl: str, source: str = "impl") -> str:
    valid = IMPLS[primitive]
    if impl not in valid:
        raise ValueError(f"unknown {source} {impl!r} for {primitive}; valid: {', '.join(valid)}")
    return impl


def default_impl(primitive: str, backend: str | None = None) -> str:
    """The formulation ``primitive`` uses when ``impl=None`` on ``backend``.

    An environment override (``ENV_VARS``: ``PRDARTS_DEPTHWISE_IMPL``, ``PRDARTS_POOL_IMPL``,
    ...) wins over the per-backend table; ``backend`` defaults to
    ``jax.default_backend()``.  Unknown backends get the GPU/TPU choice (the
    native ops).
    """
    if primitive not in IMPLS:
        raise ValueError(f"unknown primitive {primitive!r}; valid: {', '.join(IMPLS)}")
    if primitive in _OVERRIDES:
        return _OVERRIDES[primitive]
    env = os.environ.get(ENV_VARS[primitive])
    if env:
        return _check_impl(primitive, env.strip(), source=f"{ENV_VARS[primitive]} value")
    backend = (backend or jax.default_backend()).lower()
    backend = _BACKEND_ALIASES.get(backend, backend)
    return _DEFAULTS.get(backend, _DEFAULTS["gpu"])[primitive]


_OVERRIDES: dict[str, str] = {}


@contextlib.contextmanager
def use_impls(depthwise: str | None = None, pool: str | None = None,
              batch_norm: str | None = None, sgd_update: str | None = None,
              weighted_sum: str | None = None) -> Iterator[None]:
    """Within the block, traces use these formulations (None: keep the default).

    Formulations differ in compile time as well as run time: on a CPU the native ops
    (`dense`, `reduce_window`) compile about twice as fast as the fastest-running ones, which
    wins for short runs such as tests and the quick search.
    """
    new = {}
    if depthwise:
        new["depthwise_conv"] = _check_impl("depthwise_conv", depthwise)
    if pool:
        new["max_pool3"] = new["avg_pool3"] = _check_impl("max_pool3", pool)
    if batch_norm:
        new["batch_norm"] = _check_impl("batch_norm", batch_norm)
    if sgd_update:
        new["sgd_update"] = _check_impl("sgd_update", sgd_update)
    if weighted_sum:
        new["weighted_sum"] = _check_impl("weighted_sum", weighted_sum)
    saved = dict(_OVERRIDES)
    _OVERRIDES.update(new)
    try:
        yield
    finally:
        _OVERRIDES.clear()
        _OVERRIDES.update(saved)


def _resolve(primitive: str, impl: str | None) -> str:
    return default_impl(primitive) if impl is None else _check_impl(primitive, impl)


def out_size(size: int, k: int, *, stride: int = 1, dilation: int = 1, padding: int | None = None) -> int:
    """PyTorch's output length; ``padding`` defaults to ``((k - 1) * dilation) // 2``."""
    if padding is None:
        padding = ((k - 1) * dilation) // 2
    return (size + 2 * padding - dilation * (k - 1) - 1) // stride + 1


def _shifted(xp: jax.Array, h0: int, w0: int, ho: int, wo: int, stride: int) -> jax.Array:
    """``xp[:, h0::stride, w0::stride]`` cut to ``ho x wo``, as one strided slice."""
    n, _, _, c = xp.shape
    return lax.slice(
        xp,
        (0, h0, w0, 0),
        (n, h0 + (ho - 1) * stride + 1, w0 + (wo - 1) * stride + 1, c),
        (1, stride, stride, 1),
    )


# --------------------------------------------------------------------------- depthwise


def _conv(x, kernel, stride, dilation, pad, groups):
    return lax.conv_general_dilated(
        x,
        kernel,
        window_strides=(stride, stride),
        padding=((pad, pad), (pad, pad)),
        rhs_dilation=(dilation, dilation),
        dimension_numbers=_DN,
        feature_group_count=groups,
    )


def _dw_grouped(x, w, stride, dilation, pad):
    k, _, c = w.shape
    return _conv(x, w.reshape(k, k, 1, c), stride, dilation, pad, c)


def _dw_dense(x, w, stride, dilation, pad):
    c = w.shape[-1]
    return _conv(x, w[..., None] * jnp.eye(c, dtype=w.dtype), stride, dilation, pad, 1)


def _dw_blockdiag(x, w, stride, dilation, pad, block: int = BLOCK_SIZE):
    """Grouped conv with ``C / B`` groups of ``B`` channels and diagonal blocks.

    ``B`` is the largest divisor of ``C`` not above ``block``; ``B = C`` is
    ``"dense"`` and ``B = 1`` is ``"grouped"``.
    """
    k, _, c = w.shape
    b = max(d for d in range(1, min(block, c) + 1) if c % d == 0)
    g = c // b
    blocks = w.reshape(k, k, g, b, 1) * jnp.eye(b, dtype=w.dtype)  # (k, k, g, b_in, b_out)
    kernel = blocks.transpose(0, 1, 3, 2, 4).reshape(k, k, b, c)
    return _conv(x, kernel, stride, dilation, pad, g)


def _dw_shift(x, w, stride, dilation, pad):
    k = w.shape[0]
    ho = out_size(x.shape[1], k, stride=stride, dilation=dilation, padding=pad)
    wo = out_size(x.shape[2], k, stride=stride, dilation=dilation, padding=pad)
    xp = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    out = None
    for i in range(k):
        for j in range(k):
            term = _shifted(xp, i * dilation, j * dilation, ho, wo, stride) * w[i, j]
            out = term if out is None else out + term
    return out


def _dilated_cotangent(g, h, wd, k, stride, dilation, pad):
    """The cotangent `g` (N, Ho, Wo, C) of a depthwise conv of an (N, h, wd, C) input, with
    stride - 1 zeros between its pixels and padded (or cropped) so that the stride-1 'valid'
    correlation of it with the flipped kernel is the input gradient."""
    span = (k - 1) * dilation
    ho, wo = g.shape[1:3]
    return lax.pad(g, np.asarray(0, g.dtype),
                   ((0, 0, 0), (span - pad, h + pad - (ho - 1) * stride - 1, stride - 1),
                    (span - pad, wd + pad - (wo - 1) * stride - 1, stride - 1), (0, 0, 0)))


def _dw_shift_dx(g, w, h, wd, stride, dilation, pad):
    """Input gradient: the dilated cotangent correlated with the flipped kernel, tap by tap."""
    k = w.shape[0]
    n, c = g.shape[0], g.shape[3]
    gz = _dilated_cotangent(g, h, wd, k, stride, dilation, pad)
    out = None
    for i in range(k):
        for j in range(k):
            h0, w0 = (k - 1 - i) * dilation, (k - 1 - j) * dilation
            term = lax.slice(gz, (0, h0, w0, 0), (n, h0 + h, w0 + wd, c)) * w[i, j]
            out = term if out is None else out + term
    return out


def _dw_shift_dw(x, g, k, stride, dilation, pad):
    """Kernel gradient: all ``k * k`` tap products reduced over the pixels of each image in one
    variadic reduce (one pass over the input), then over the batch.

    Reducing to per-image partial sums first lets XLA:CPU split the work over the images (a
    reduction straight to ``(C,)`` ran on one core): 2-3x faster on the retraining network's
    shapes (7x7, 96x32x32x36: 45 -> 19 ms), never slower on the supernet's.
    """
    acc = jnp.promote_types(x.dtype, jnp.float32)
    xp = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0))).astype(acc)
    g = g.astype(acc)
    ho, wo = g.shape[1:3]
    zero = np.asarray(0, acc)
    prods = tuple(_shifted(xp, i * dilation, j * dilation, ho, wo, stride) * g
                  for i in range(k) for j in range(k))
    per_image = lax.reduce(prods, (zero,) * len(prods),
                           lambda a, b: tuple(u + v for u, v in zip(a, b)), (1, 2))
    return jnp.stack(per_image).sum(axis=1).reshape(k, k, -1).astype(x.dtype)


_relu = jax.nn.relu   # its derivative at 0 is 0 (jnp.maximum's would be 1/2)


def _relu_mask(x, dx):
    """The input gradient through relu(x), whose output's gradient is `dx` (jax.nn.relu's)."""
    return lax.select(x > 0, dx, lax.full_like(dx, 0))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4, 5))
def _dw_shift_vjp(x, w, stride, dilation, pad, relu):
    """``"shift"`` forward (of relu(x) if `relu`) with a hand-written backward (reverse-mode
    only).

    On a CPU each of the three tap sums (output, input gradient, kernel gradient) is compiled
    apart (`fusion_barrier.isolate`, with the grouped conv as the compact fallback): fused
    into their consumers they ran several times slower, and hundreds of shifted slices in
    the main program made its compile need tens of GB. Where `native_kernels` serve (float32
    on the CPU), the conv, the input gradient and the kernel gradient are native kernels
    instead, which apply the ReLU (and mask the input gradient by it) themselves.
    """
    if native_kernels.use_for(x, w):
        return _dw_native(x, w, stride, dilation, pad, False, relu)
    return isolate(
        lambda x, w: _dw_shift(_relu(x) if relu else x, w, stride, dilation, pad),
        lambda x, w: _dw_grouped(_relu(x) if relu else x, w, stride, dilation, pad),
        x, w)


def _dw_shift_vjp_fwd(x, w, stride, dilation, pad, relu):
    return _dw_shift_vjp(x, w, stride, dilation, pad, relu), (x, w)


def _dw_shift_vjp_bwd(stride, dilation, pad, relu, res, g):
    x, w = res
    k = w.shape[0]
    if native_kernels.use_for(x, g, w):
        if stride == 1 and 2 * pad == (k - 1) * dilation:
            # the input gradient of a stride-1 'same' conv is the conv of g with the flipped
            # kernel; in general, of g dilated by the stride and padded to the input's extent
            gz, gz_pad = g, pad
        else:
            gz = _dilated_cotangent(g, x.shape[1], x.shape[2], k, stride, dilation, pad)
            gz_pad = 0
        if relu:
            dx = _dw_native_masked(gz, w, x, dilation, gz_pad)
        else:
            dx = _dw_native(gz, w, 1, dilation, gz_pad, True, False)
        dw = _dw_native_dw(x, g, k, stride, dilation, pad, relu)
        return dx, dw.astype(w.dtype)
    xr = _relu(x) if relu else x
    x_struct = jax.ShapeDtypeStruct(x.shape, x.dtype)
    w_struct = jax.ShapeDtypeStruct(w.shape, w.dtype)

    def grouped_dx(g, w):
        return jax.linear_transpose(lambda x: _dw_grouped(x, w, stride, dilation, pad), x_struct)(g)[0]

    def grouped_dw(g, x):
        return jax.linear_transpose(lambda w: _dw_grouped(x, w, stride, dilation, pad), w_struct)(g)[0]

    dx = isolate(lambda g, w: _dw_shift_dx(g, w, x.shape[1], x.shape[2], stride, dilation, pad),
                 grouped_dx, g, w)
    dw = isolate(lambda g, x: _dw_shift_dw(x, g, k, stride, dilation, pad), grouped_dw, g, xr)
    return (_relu_mask(x, dx) if relu else dx), dw.astype(w.dtype)


# The native kernels (`native_kernels`) are opaque to JAX: each is a custom VJP whose backward
# is the pure-XLA formulation's, so that reverse mode of second order still works.

@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4, 5, 6))
def _dw_native(x, w, stride, dilation, pad, flip, relu):
    """The conv of `x` (of relu(x) if `relu`) with `w`, or with `w[::-1, ::-1]` if `flip` (the
    input gradient's kernel): the native kernel applies both as it reads its operands, so
    neither is a kernel of XLA's per call."""
    k = w.shape[0]
    out_hw = tuple(out_size(n, k, stride=stride, dilation=dilation, padding=pad)
                   for n in x.shape[1:3])
    return native_kernels.depthwise_conv(x, w, out_hw, stride, dilation, pad, flip, relu)


def _dw_native_fwd(x, w, stride, dilation, pad, flip, relu):
    return _dw_native(x, w, stride, dilation, pad, flip, relu), (x, w)


def _dw_native_bwd(stride, dilation, pad, flip, relu, res, ct):
    x, w = res
    return jax.vjp(lambda x, w: _dw_shift(_relu(x) if relu else x, w[::-1, ::-1] if flip else w,
                                          stride, dilation, pad), x, w)[1](ct)


_dw_native.defvjp(_dw_native_fwd, _dw_native_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def _dw_native_masked(g, w, x, dilation, pad):
    """The input gradient through relu(x) of a stride-1 conv: the conv of `g` with the flipped
    kernel, zero where x <= 0, in one native pass."""
    return native_kernels.depthwise_conv_masked(g, w, x, 1, dilation, pad, True)


def _dw_native_masked_fwd(g, w, x, dilation, pad):
    return _dw_native_masked(g, w, x, dilation, pad), (g, w, x)


def _dw_native_masked_bwd(dilation, pad, res, ct):
    g, w, x = res
    dg, dw = jax.vjp(lambda g, w: _relu_mask(x, _dw_shift(g, w[::-1, ::-1], 1, dilation, pad)),
                     g, w)[1](ct)
    return dg, dw, jnp.zeros_like(x)


_dw_native_masked.defvjp(_dw_native_masked_fwd, _dw_native_masked_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4, 5, 6))
def _dw_native_dw(x, g, k, stride, dilation, pad, relu):
    return native_kernels.depthwise_kernel_grad(x, g, k, stride, dilation, pad, relu)


def _dw_native_dw_fwd(x, g, k, stride, dilation, pad, relu):
    return _dw_native_dw(x, g, k, stride, dilation, pad, relu), (x, g)


def _dw_native_dw_bwd(k, stride, dilation, pad, relu, res, ct):
    x, g = res
    return jax.vjp(lambda x, g: _dw_shift_dw(_relu(x) if relu else x, g, k, stride, dilation,
                                             pad), x, g)[1](ct)


_dw_native_dw.defvjp(_dw_native_dw_fwd, _dw_native_dw_bwd)


_dw_shift_vjp.defvjp(_dw_shift_vjp_fwd, _dw_shift_vjp_bwd)

_DEPTHWISE = {
    "grouped": _dw_grouped,
    "dense": _dw_dense,
    "shift": _dw_shift,
    "shift_vjp": lambda x, w, stride, dilation, pad: _dw_shift_vjp(x, w, stride, dilation, pad,
                                                                   False),
    "blockdiag": _dw_blockdiag,
}


def depthwise_conv(
    x: jax.Array,
    w: jax.Array,
    *,
    stride: int = 1,
    dilation: int = 1,
    impl: str | None = None,
    relu_input: bool = False,
) -> jax.Array:
    """Depthwise ``k x k`` convolution of ``x`` (N, H, W, C), or of ``relu(x)`` with
    ``relu_input``, with ``w`` (k, k, C), no bias.

    Zero padding ``((k - 1) * dilation) // 2`` on each side; the output size is
    PyTorch's ``(H + 2p - dilation * (k - 1) - 1) // stride + 1``.  ``impl`` is
    one of ``IMPLS["depthwise_conv"]``; ``None`` means ``default_impl("depthwise_conv")``.
    Where the native kernels serve ``"shift_vjp"``, they apply the ReLU as they read ``x``
    and mask the input gradient by it in the same pass (no ReLU or mask kernels of XLA's,
    the same bits); elsewhere it is ``jax.nn.relu(x)`` first.
    """
    if w.ndim != 3 or w.shape[0] != w.shape[1] or w.shape[2] != x.shape[-1]:
        raise ValueError(f"kernel must have shape (k, k, C={x.shape[-1]}), got {w.shape}")
    impl = _resolve("depthwise_conv", impl)
    pad = ((w.shape[0] - 1) * dilation) // 2
    w = w.astype(x.dtype)
    if relu_input and impl == "shift_vjp" and native_kernels.use_for(x, w):
        return _dw_shift_vjp(x, w, stride, dilation, pad, True)
    return _DEPTHWISE[impl](jax.nn.relu(x) if relu_input else x, w, stride, dilation, pad)


# --------------------------------------------------------------------------- pools


def _pad_value(dtype) -> np.ndarray:
    """Lowest value of ``dtype``; concrete (numpy), so reduce_window stays differentiable."""
    if jnp.issubdtype(dtype, jnp.floating):
        return np.asarray(-np.inf, dtype)
    return np.asarray(jnp.iinfo(dtype).min, dtype)


def _separable(x, stride, init, op):
    """Applies ``op`` over 3x3 windows (padding 1 filled with ``init``) as rows then columns."""
    n, h, w, c = x.shape
    ho, wo = out_size(h, 3, stride=stride), out_size(w, 3, stride=stride)
    xp = lax.pad(x, init, ((0, 0, 0), (1, 1, 0), (1, 1, 0), (0, 0, 0)))
    rows = [lax.slice(xp, (0, i, 0, 0), (n, i + (ho - 1) * stride + 1, w + 2, c), (1, stride, 1, 1)) for i in range(3)]
    r = op(op(rows[0], rows[1]), rows[2])
    cols = [lax.slice(r, (0, 0, j, 0), (n, ho, j + (wo - 1) * stride + 1, c), (1, 1, stride, 1)) for j in range(3)]
    return op(op(cols[0], cols[1]), cols[2])


@jax.custom_vjp
def _box_sum3(x):
    """3x3 window sums at stride 1 with zero padding, as rows then columns.

    The map is linear and symmetric (each output sums a centred window), so it is its own
    transpose: the VJP is the same window sum of the cotangent. Written out because JAX's
    transpose of the slices (pads of the cotangent) fused badly on XLA:CPU inside a supernet's
    backward pass; reverse mode only.
    """
    return _separable(x, 1, np.asarray(0, x.dtype), lax.add)


_box_sum3.defvjp(lambda x: (_box_sum3(x), None), lambda _, g: (_box_sum3(g),))


def _window(x, stride, init, op):
    return lax.reduce_window(x, init, op, (1, 3, 3, 1), (1, stride, stride, 1), ((0, 0), (1, 1), (1, 1), (0, 0)))


def _counts(size: int, stride: int) -> np.ndarray:
    """Number of non-padding taps of each output position along one axis."""
    starts = np.arange(out_size(size, 3, stride=stride)) * stride - 1
    return (np.minimum(starts + 2, size - 1) - np.maximum(starts, 0) + 1).astype(np.float32)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 2))
def _pool_native(kind, x, stride):
    """The ``"native"`` pools: one native kernel call forward and one backward (first order
    only). Elsewhere (another backend or dtype, no C++ compiler) ``"native"`` computes as
    ``"reduce_window"``."""
    return native_kernels.pool3(kind, x, stride)


def _pool_native_fwd(kind, x, stride):
    return _pool_native(kind, x, stride), x


def _pool_native_bwd(kind, stride, x, g):
    return (native_kernels.pool3_grad(kind, x, g, stride),)


_pool_native.defvjp(_pool_native_fwd, _pool_native_bwd)


def max_pool3(x: jax.Array, *, stride: int = 1, impl: str | None = None) -> jax.Array:
    """3x3 max pool of ``x`` (N, H, W, C), padding 1 (padded values never win).

    ``impl`` is one of ``IMPLS["max_pool3"]``; ``None`` means ``default_impl("max_pool3")``.
    """
    impl = _resolve("max_pool3", impl)
    if impl == "native" and native_kernels.use_for(x):
        return _pool_native("max", x, stride)
    init = _pad_value(x.dtype)
    if impl == "separable":
        return _separable(x, stride, init, lax.max)
    return _window(x, stride, init, lax.max)


def avg_pool3(x: jax.Array, *, stride: int = 1, impl: str | None = None) -> jax.Array:
    """3x3 average pool of ``x`` (N, H, W, C), padding 1, ``count_include_pad=False``.

    ``impl`` is one of ``IMPLS["avg_pool3"]``; ``None`` means ``default_impl("avg_pool3")``.
    """
    impl = _resolve("avg_pool3", impl)
    if impl == "native" and native_kernels.use_for(x):
        return _pool_native("avg", x, stride)
    zero = np.asarray(0, x.dtype)
    if impl == "separable":
        total = _box_sum3(x) if stride == 1 else _separable(x, stride, zero, lax.add)
    else:
        total = _window(x, stride, zero, lax.add)
    counts = np.outer(_counts(x.shape[1], stride), _counts(x.shape[2], stride))
    return total / jnp.asarray(counts[None, :, :, None], x.dtype)
