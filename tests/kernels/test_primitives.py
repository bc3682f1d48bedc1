"""Equivalence of the formulations in prdarts_jax.kernels.primitives, and numpy references."""

from __future__ import annotations

import itertools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prdarts_jax.kernels import primitives as P

TOL = dict(rtol=1e-5, atol=1e-5)
DW_IMPLS = P.IMPLS["depthwise_conv"]
POOL_IMPLS = P.IMPLS["max_pool3"]
# (N, H, W, C): even square, and odd/non-square
SHAPES = [(2, 8, 8, 3), (1, 7, 9, 4)]
DW_CONFIGS = list(itertools.product((1, 2), (1, 2)))  # (dilation, stride)


def _pt_out(size, k, stride, dilation):
    p = ((k - 1) * dilation) // 2
    return (size + 2 * p - dilation * (k - 1) - 1) // stride + 1


def _np_depthwise(x, w, stride, dilation):
    n, h, wd, c = x.shape
    k = w.shape[0]
    p = ((k - 1) * dilation) // 2
    xp = np.zeros((n, h + 2 * p, wd + 2 * p, c), np.float64)
    xp[:, p:p + h, p:p + wd] = x
    ho, wo = _pt_out(h, k, stride, dilation), _pt_out(wd, k, stride, dilation)
    out = np.zeros((n, ho, wo, c), np.float64)
    for oi in range(ho):
        for oj in range(wo):
            for i in range(k):
                for j in range(k):
                    out[:, oi, oj] += xp[:, oi * stride + i * dilation, oj * stride + j * dilation] * w[i, j]
    return out


def _np_pool(x, stride, kind):
    n, h, wd, c = x.shape
    ho, wo = (h - 1) // stride + 1, (wd - 1) // stride + 1
    out = np.zeros((n, ho, wo, c), np.float64)
    for oi in range(ho):
        for oj in range(wo):
            r0, c0 = oi * stride - 1, oj * stride - 1
            win = x[:, max(r0, 0):r0 + 3, max(c0, 0):c0 + 3]  # padding never enters
            out[:, oi, oj] = win.max(axis=(1, 2)) if kind == "max" else win.mean(axis=(1, 2))
    return out


def _rand(shape, seed):
    return np.asarray(jax.random.normal(jax.random.key(seed), shape, jnp.float32))


@pytest.mark.parametrize("k", [1, 3, 5, 7])
def test_depthwise_impls_agree(k):
    """Forward and grads w.r.t. x and w agree across impls, for all (dilation, stride, shape)."""
    # every (dilation, stride) on the even shape; the odd shape where it matters most, with stride 2
    cases = [(SHAPES[0], d, s) for d, s in DW_CONFIGS] + [(SHAPES[1], d, 2) for d in (1, 2)]
    xs = [_rand(shape, i) for i, (shape, _, _) in enumerate(cases)]
    ws = [_rand((k, k, shape[-1]), 100 + i) for i, (shape, _, _) in enumerate(cases)]
    cts = [_rand((shape[0], _pt_out(shape[1], k, s, d), _pt_out(shape[2], k, s, d), shape[3]), 200 + i)
           for i, (shape, d, s) in enumerate(cases)]

    def run(xs, ws):
        res = {}
        for impl in DW_IMPLS:
            for i, (_, d, s) in enumerate(cases):
                f = lambda x, w: P.depthwise_conv(x, w, stride=s, dilation=d, impl=impl)  # noqa: B023,E731
                y = f(xs[i], ws[i])
                grads = jax.grad(lambda x, w: jnp.sum(f(x, w) * cts[i]), argnums=(0, 1))(xs[i], ws[i])  # noqa: B023
                res[impl, i] = (y, grads)
        return res

    res = jax.jit(run)(xs, ws)
    for i, (shape, d, s) in enumerate(cases):
        expected = (shape[0], _pt_out(shape[1], k, s, d), _pt_out(shape[2], k, s, d), shape[3])
        ref = res["grouped", i]
        assert ref[0].shape == expected, (shape, k, d, s)
        for impl in DW_IMPLS[1:]:
            chex.assert_trees_all_close(res[impl, i], ref, **TOL, custom_message=f"{impl} k={k} d={d} s={s} {shape}")


def test_depthwise_numpy_reference_and_shapes():
    cases = [((2, 8, 8, 3), 3, 1, 1), ((1, 7, 9, 4), 5, 2, 2), ((1, 7, 7, 2), 3, 2, 1), ((1, 9, 8, 2), 7, 1, 2)]
    xs = [_rand(shape, i) for i, (shape, *_) in enumerate(cases)]
    ws = [_rand((k, k, shape[-1]), 50 + i) for i, (shape, k, *_) in enumerate(cases)]

    @jax.jit
    def run(xs, ws):
        return [P.depthwise_conv(x, w, stride=s, dilation=d, impl=impl)
                for impl in DW_IMPLS for x, w, (_, _, s, d) in zip(xs, ws, cases)]

    outs = iter(run(xs, ws))
    for impl in DW_IMPLS:
        for x, w, (shape, k, s, d) in zip(xs, ws, cases):
            y = next(outs)
            assert y.shape == (shape[0], _pt_out(shape[1], k, s, d), _pt_out(shape[2], k, s, d), shape[3])
            assert y.shape[1:3] == (P.out_size(shape[1], k, stride=s, dilation=d),
                                    P.out_size(shape[2], k, stride=s, dilation=d))
            np.testing.assert_allclose(y, _np_depthwise(x, w, s, d), **TOL, err_msg=f"{impl} {shape} k={k} s={s} d={d}")
    # PyTorch: 3x3 stride 2 on 32x32 gives 16x16
    assert jax.eval_shape(lambda x, w: P.depthwise_conv(x, w, stride=2, impl="grouped"),
                          jnp.zeros((1, 32, 32, 2)), jnp.zeros((3, 3, 2))).shape == (1, 16, 16, 2)


def test_shift_vjp_many_channels_and_second_order():
    """The hand-written backward with more channels than a SIMD register holds (C > 16), and
    grad of grad."""
    x, w = jnp.asarray(_rand((1, 6, 5, 20), 7)), jnp.asarray(_rand((3, 3, 20), 8))

    def loss(x, w, impl):
        return jnp.sum(jnp.sin(P.depthwise_conv(x, w, stride=2, impl=impl)))

    def grad_dot(x, w, impl):
        gx, gw = jax.grad(loss, argnums=(0, 1))(x, w, impl)
        return jnp.sum(gx) + jnp.sum(gw**2)

    @jax.jit
    def run(x, w):
        return {impl: (jax.grad(loss, argnums=(0, 1))(x, w, impl), jax.grad(grad_dot, argnums=(0, 1))(x, w, impl))
                for impl in ("dense", "shift_vjp")}

    res = run(x, w)
    chex.assert_trees_all_close(res["shift_vjp"], res["dense"], rtol=1e-4, atol=1e-4)


def test_shift_vjp_falls_back_to_the_grouped_conv_when_the_first_element_is_nan():
    """On a CPU each shift_vjp tap sum sits in a conditional (fusion_barrier.isolate) whose
    other branch, taken when the first input element is NaN, is the grouped conv."""
    x, w = jnp.asarray(_rand((2, 7, 7, 3), 1)), jnp.asarray(_rand((5, 5, 3), 2))
    x = x.at[0, 0, 0, 0].set(jnp.nan)
    ct = jnp.asarray(_rand((2, 4, 4, 3), 3)).at[0, 0, 0, 0].set(jnp.nan)

    @jax.jit
    def run(x, w, ct):
        out = {}
        for impl in ("grouped", "shift_vjp"):
            y, vjp = jax.vjp(lambda x, w: P.depthwise_conv(x, w, stride=2, dilation=2, impl=impl), x, w)  # noqa: B023
            out[impl] = (y, *vjp(ct))
        return out

    res = run(x, w, ct)
    for got, ref in zip(res["shift_vjp"], res["grouped"]):   # output, input and kernel gradient
        assert np.isnan(got[..., 0]).any() and np.isnan(ref[..., 0]).any()
        np.testing.assert_allclose(got[..., 1:], ref[..., 1:], **TOL)   # channels without NaN


def test_depthwise_bad_kernel_shape():
    with pytest.raises(ValueError, match="kernel"):
        P.depthwise_conv(jnp.zeros((1, 4, 4, 3)), jnp.zeros((3, 3, 2)))


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pools(kind):
    """Impls agree (forward and grad) and match numpy, stride 1 and 2, even and odd sizes."""
    fn = P.max_pool3 if kind == "max" else P.avg_pool3
    cases = [(shape, s) for shape in [(2, 8, 8, 3), (1, 7, 9, 2)] for s in (1, 2)]
    xs = [_rand(shape, 10 + i) for i, (shape, _) in enumerate(cases)]
    cts = [_rand((sh[0], (sh[1] - 1) // s + 1, (sh[2] - 1) // s + 1, sh[3]), 20 + i) for i, (sh, s) in enumerate(cases)]

    @jax.jit
    def run(xs):
        res = {}
        for impl in POOL_IMPLS:
            for i, (_, s) in enumerate(cases):
                f = lambda x: fn(x, stride=s, impl=impl)  # noqa: B023,E731
                res[impl, i] = (f(xs[i]), jax.grad(lambda x: jnp.sum(f(x) * cts[i]))(xs[i]))  # noqa: B023
        return res

    res = run(xs)
    for i, (shape, s) in enumerate(cases):
        ref = res[POOL_IMPLS[0], i]
        np.testing.assert_allclose(ref[0], _np_pool(xs[i], s, kind), **TOL)
        for impl in POOL_IMPLS[1:]:
            chex.assert_trees_all_close(res[impl, i], ref, **TOL, custom_message=f"{impl} {kind} s={s} {shape}")
        for impl in POOL_IMPLS:
            y, gx = res[impl, i]
            assert np.all(np.isfinite(y)) and np.all(np.isfinite(gx))
            if kind == "avg":
                # corner window holds 4 real pixels; padding is not counted
                np.testing.assert_allclose(y[:, 0, 0], xs[i][:, :2, :2].mean(axis=(1, 2)), **TOL)
                # gradient of a linear op: each input gets sum of ct / count over its windows
                assert abs(float(np.sum(gx)) - float(np.sum(cts[i]))) < 1e-3
            else:
                # every unit of cotangent lands on exactly one input (no ties in random data)
                np.testing.assert_allclose(np.sum(gx), np.sum(cts[i]), rtol=1e-4)


def test_max_pool_negative_input_ignores_padding():
    x = -1.0 - jnp.abs(jnp.asarray(_rand((1, 4, 5, 2), 3)))
    for impl in POOL_IMPLS:
        y = P.max_pool3(x, impl=impl)
        assert float(jnp.max(y)) < -1.0, impl  # a zero-padded pool would give 0 at the border
        np.testing.assert_allclose(y, _np_pool(np.asarray(x), 1, "max"), **TOL)


def test_default_impl_valid(monkeypatch):
    monkeypatch.delenv("PRDARTS_DEPTHWISE_IMPL", raising=False)
    monkeypatch.delenv("PRDARTS_POOL_IMPL", raising=False)
    for primitive, impls in P.IMPLS.items():
        for backend in (None, "cpu", "gpu", "cuda", "tpu"):
            assert P.default_impl(primitive, backend) in impls
    assert P.default_impl("depthwise_conv", "gpu") == "grouped"
    assert P.default_impl("max_pool3", "tpu") == "reduce_window"
    with pytest.raises(ValueError, match="nonsense"):
        P.default_impl("nonsense")


def test_unknown_impl_raises():
    x, w = jnp.zeros((1, 4, 4, 2)), jnp.zeros((3, 3, 2))
    with pytest.raises(ValueError, match="'fft'.*grouped"):
        P.depthwise_conv(x, w, impl="fft")
    with pytest.raises(ValueError, match="'bogus'.*separable"):
        P.max_pool3(x, impl="bogus")
    with pytest.raises(ValueError, match="'bogus'"):
        P.avg_pool3(x, impl="bogus")


def test_env_override(monkeypatch):
    monkeypatch.setenv("PRDARTS_DEPTHWISE_IMPL", "shift")
    monkeypatch.setenv("PRDARTS_POOL_IMPL", "reduce_window")
    assert P.default_impl("depthwise_conv", "gpu") == "shift"
    assert P.default_impl("depthwise_conv") == "shift"
    assert P.default_impl("max_pool3", "cpu") == "reduce_window"
    assert P.default_impl("avg_pool3", "cpu") == "reduce_window"
    # impl=None follows the override
    jaxpr = str(jax.make_jaxpr(lambda x, w: P.depthwise_conv(x, w))(jnp.zeros((1, 4, 4, 2)), jnp.zeros((3, 3, 2))))
    assert "conv_general_dilated" not in jaxpr
    monkeypatch.setenv("PRDARTS_POOL_IMPL", "separable")
    assert "reduce_window" not in str(jax.make_jaxpr(lambda x: P.max_pool3(x))(jnp.zeros((1, 4, 4, 2))))
    monkeypatch.setenv("PRDARTS_DEPTHWISE_IMPL", "bogus")
    with pytest.raises(ValueError, match="PRDARTS_DEPTHWISE_IMPL.*'bogus'"):
        P.default_impl("depthwise_conv")
