"""Flax Linen modules that realise candidate operations (SPEC §1).

Every op maps (N, H, W, C) to (N, H/stride, W/stride, C), NHWC. In search mode (`affine=False`)
all BatchNorms are non-affine and pools are followed by a non-affine BatchNorm; in the final
network (`affine=True`) everything is affine and pools stand alone, as in DARTS.

Parameters are stored in one canonical layout whatever formulation computes the depthwise
convolution or the pools (see `primitives`): a SepConv layer holds `depthwise` (k, k, C_in) and
`pointwise` (C_in, C_out) and a `bn`; a conv op holds `layer_0` … `layer_n`.
"""

from __future__ import annotations

import functools

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp

from prdarts_jax.kernels import primitives
from prdarts_jax.kernels.batch_norm import normalize_eval, normalize_train
from prdarts_jax.kernels.pointwise import pointwise
from prdarts_jax.models import formulations
from prdarts_jax.models.initializers import Constant, uniform_fan_in
from prdarts_jax.space.opspec import INITIAL_POOL, OpSpec

__all__ = [
    "OpSpec", "INITIAL_POOL", "BatchNorm", "SepConv", "ConvOp", "PoolOp", "Identity",
    "FactorizedReduce", "ReLUConvBN", "make_op", "uniform_fan_in",
]

BN_MOMENTUM = 0.9
BN_EPS = 1e-5


class BatchNorm(nn.Module):
    """BatchNorm over N, H, W with PyTorch semantics (momentum 0.1, eps 1e-5, unbiased running var).

    A lean module on purpose: it keeps tracing linear in network size.
    """

    affine: bool = True

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        c = x.shape[-1]
        ra_mean = self.variable("batch_stats", "mean", Constant(0.0), (c,), jnp.float32)
        ra_var = self.variable("batch_stats", "var", Constant(1.0), (c,), jnp.float32)
        if train:
            y, new_mean, new_var = normalize_train(x, ra_mean.value, ra_var.value,
                                                   momentum=BN_MOMENTUM, eps=BN_EPS)
            if not self.is_initializing():
                ra_mean.value, ra_var.value = new_mean, new_var
        else:
            y = normalize_eval(x, ra_mean.value, ra_var.value, eps=BN_EPS)
        if self.affine:
            y = y * self.param("scale", Constant(1.0), (c,)) + self.param(
                "bias", Constant(0.0), (c,))
        return y


class SepConv(nn.Module):
    """ReLU → depthwise k×k (dilation, stride) → pointwise 1×1 → BatchNorm."""

    c_out: int
    k: int
    dil: int = 1
    stride: int = 1
    affine: bool = False

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        c_in = x.shape[-1]
        dw = self.param("depthwise", uniform_fan_in(self.k * self.k), (self.k, self.k, c_in))
        pw = self.param("pointwise", uniform_fan_in(c_in), (c_in, self.c_out))
        y = primitives.depthwise_conv(x, dw, stride=self.stride, dilation=self.dil,
                                      relu_input=True)
        return BatchNorm(self.affine, name="bn")(pointwise(y, pw), train)


class ConvOp(nn.Module):
    """A stack of SepConv layers: one per entry of `c_mul` (to C·m channels), then one to C."""

    c: int
    k: int
    dil: int
    c_mul: tuple[int, ...]
    stride: int = 1
    affine: bool = False

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        widths = [self.c * m for m in self.c_mul] + [self.c]
        for i, width in enumerate(widths):
            x = SepConv(width, self.k, self.dil, self.stride if i == 0 else 1, self.affine,
                        name=f"layer_{i}")(x, train)
        return x


class PoolOp(nn.Module):
    """3×3 max or average pool (average excludes padding), BN-followed in search mode."""

    pool_type: str
    stride: int = 1
    affine: bool = False

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        fn = primitives.max_pool3 if self.pool_type == "max" else primitives.avg_pool3
        y = fn(x, stride=self.stride)
        if not self.affine:
            y = BatchNorm(False, name="bn")(y, train)
        return y


class Identity(nn.Module):
    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        del train
        return x


class FactorizedReduce(nn.Module):
    """ReLU, two 1×1 stride-2 convs (the second on the input shifted by one pixel), concat, BN."""

    c_out: int
    affine: bool = True

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        c_in = x.shape[-1]
        half = self.c_out // 2
        w1 = self.param("conv_1", uniform_fan_in(c_in), (c_in, half))
        w2 = self.param("conv_2", uniform_fan_in(c_in), (c_in, self.c_out - half))
        x = nn.relu(x)
        shifted = jnp.pad(x[:, 1:, 1:, :], ((0, 0), (0, 1), (0, 1), (0, 0)))
        y = jnp.concatenate(
            [pointwise(x[:, ::2, ::2], w1), pointwise(shifted[:, ::2, ::2], w2)], axis=-1)
        return BatchNorm(self.affine, name="bn")(y, train)


class ReLUConvBN(nn.Module):
    """ReLU → 1×1 conv → BN: the cell input preprocessing."""

    c_out: int
    affine: bool = True

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        w = self.param("conv", uniform_fan_in(x.shape[-1]), (x.shape[-1], self.c_out))
        return BatchNorm(self.affine, name="bn")(pointwise(nn.relu(x), w), train)


@functools.cache
def _traced_once(cls: type[nn.Module], setting: tuple) -> type[nn.Module]:
    """`cls` whose calls JAX traces once per (configuration, input shape, `train`).

    A supernet applies the same op (say a 5x5 conv on 16 channels at stride 1) on many edges of
    many cells; inlined, each application is traced, differentiated and lowered anew. As a
    nested jit, the first application's jaxpr, its JVP and transpose and its lowering are
    reused by the others (XLA inlines the calls, so the compiled program is the same). This
    took the tracing and lowering of the quick search's heavy gradient program from 10.5 to
    4 s. A jit's cache knows nothing of the formulations in force (`formulations.use_impls`,
    the native kernels' setting), so there is one wrapper per `setting`
    (`formulations.in_force()`)."""
    del setting
    return nn.jit(cls, static_argnums=2)   # (self, x, train): `train` is a Python bool


def make_op(op: OpSpec, c: int, stride: int, affine: bool, name: str | None = None, *,
            traced_once: bool = False) -> nn.Module:
    """The module realising `op` on C channels at `stride` (1 or 2). `traced_once`: as a
    nested jit (`_traced_once`), for applying initialised variables without random draws
    (a nested jit splits the module's random streams otherwise than the inlined module)."""
    if stride not in (1, 2):
        raise ValueError(f"stride must be 1 or 2, got {stride}")
    classes = (PoolOp, ConvOp, FactorizedReduce)
    if traced_once:
        key = formulations.in_force()
        classes = tuple(_traced_once(cls, key) for cls in classes)
    pool, conv, reduce = classes
    if op.kind == "pool":
        return pool(op.pool_type, stride, affine, name=name)
    if op.kind == "skip":
        return Identity(name=name) if stride == 1 else reduce(c, affine, name=name)
    return conv(c, op.k, op.dil, op.c_mul, stride, affine, name=name)


def apply_op(op: OpSpec, variables: dict, x: jax.Array, *, stride: int = 1,
             affine: bool = False, train: bool = False) -> tuple[jax.Array, dict]:
    """Runs one op standalone; returns the output and the updated batch stats."""
    chex.assert_rank(x, 4)
    module = make_op(op, x.shape[-1], stride, affine)
    if train:
        y, upd = module.apply(variables, x, True, mutable=["batch_stats"])
        return y, upd.get("batch_stats", {})
    return module.apply(variables, x, False), variables.get("batch_stats", {})


def init_op(op: OpSpec, key: jax.Array, c: int, *, stride: int = 1, affine: bool = False,
            spatial: int = 8) -> dict:
    """Fresh variables (`params`, `batch_stats`) of `op` on C channels."""
    x = jnp.zeros((1, spatial, spatial, c), jnp.float32)
    return dict(make_op(op, c, stride, affine).init(key, x, False))
