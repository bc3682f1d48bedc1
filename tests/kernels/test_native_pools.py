import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prdarts_jax.kernels import native_kernels, primitives

needs_compiler = pytest.mark.skipif(native_kernels.compiler() is None,
                                    reason="no C++ compiler on this machine")
POOLS = {"max": primitives.max_pool3, "avg": primitives.avg_pool3}


def _pool_and_grad(kind, impl, stride):
    pool = POOLS[kind]

    def outputs(x, g):
        y, vjp = jax.vjp(lambda x: pool(x, stride=stride, impl=impl), x)
        return y, vjp(g)[0]
    return jax.jit(outputs)


def _operands(shape, stride, seed=0):
    rng = np.random.default_rng(seed)
    n, h, w, c = shape
    x = jnp.asarray(rng.standard_normal(shape), jnp.float32)
    g = jnp.asarray(rng.standard_normal((n, (h - 1) // stride + 1, (w - 1) // stride + 1, c)),
                    jnp.float32)
    return x, g


@needs_compiler
@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("shape", [
    (2, 8, 8, 3),       # fewer channels than a SIMD vector
    (3, 7, 5, 20),      # odd, unequal sizes
    (2, 1, 1, 4),       # one pixel: every window is mostly padding
    (20, 4, 4, 17),     # more images than blocks
])
def test_native_pools_match_reduce_window_forward_and_backward(kind, stride, shape):
    x, g = _operands(shape, stride)
    got = _pool_and_grad(kind, "native", stride)(x, g)
    want = _pool_and_grad(kind, "reduce_window", stride)(x, g)
    chex.assert_trees_all_close(got, want, rtol=1e-6, atol=1e-6)
    chex.assert_trees_all_equal(got, _pool_and_grad(kind, "native", stride)(x, g))


@needs_compiler
def test_a_max_pool_tie_sends_the_gradient_to_the_first_maximal_tap():
    x = jnp.zeros((1, 3, 3, 1), jnp.float32)      # every tap ties
    g = jnp.ones((1, 3, 3, 1), jnp.float32)
    _, dx = _pool_and_grad("max", "native", 1)(x, g)
    # output (i, j) sends its 1 to the top-left tap of its window inside the image
    np.testing.assert_array_equal(dx[0, :, :, 0], [[4, 2, 0], [2, 1, 0], [0, 0, 0]])
    assert float(dx.sum()) == 9.0


@needs_compiler
def test_native_pools_run_as_library_calls():
    x, g = _operands((2, 6, 6, 4), 1)
    text = _pool_and_grad("max", "native", 1).lower(x, g).as_text()
    assert "prdarts_max_pool3" in text and "prdarts_max_pool3_grad" in text
    assert "reduce_window" not in text and "select_and_scatter" not in text


def test_off_switch_and_other_dtypes_compute_as_reduce_window(monkeypatch):
    x, g = _operands((2, 5, 5, 3), 2)
    low = (x.astype(jnp.bfloat16), g.astype(jnp.bfloat16))
    assert "prdarts_" not in _pool_and_grad("avg", "native", 2).lower(*low).as_text()
    monkeypatch.setenv(native_kernels.ENV, "off")
    for kind in POOLS:
        chex.assert_trees_all_equal(_pool_and_grad(kind, "native", 2)(x, g),
                                    _pool_and_grad(kind, "reduce_window", 2)(x, g))


@needs_compiler
def test_a_nan_wins_the_native_max_pool_as_in_xla():
    x = jnp.zeros((1, 4, 4, 2), jnp.float32).at[0, 1, 1, 0].set(jnp.nan)
    g = jnp.ones((1, 4, 4, 2), jnp.float32)
    got, _ = _pool_and_grad("max", "native", 1)(x, g)
    want, _ = _pool_and_grad("max", "reduce_window", 1)(x, g)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    assert int(np.isnan(got).sum()) == 9
