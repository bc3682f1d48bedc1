"""fusion_barrier: exact pass-throughs that XLA:CPU compiles apart, and nothing elsewhere."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prdarts_jax.kernels import fusion_barrier
from prdarts_jax.kernels.fusion_barrier import isolate, materialize


def _x(shape=(2, 5, 5, 3), seed=0):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


def _f(a, b):
    y = materialize(a * b + 1.0)
    return jnp.sum(jnp.sin(y) + jnp.cos(y) * y)


def _f_plain(a, b):
    y = a * b + 1.0
    return jnp.sum(jnp.sin(y) + jnp.cos(y) * y)


def test_materialize_is_exact_forward_backward_and_in_forward_mode():
    a, b = _x(), _x(seed=1)
    assert jnp.array_equal(materialize(a), a)
    np.testing.assert_array_equal(jax.grad(_f, (0, 1))(a, b), jax.grad(_f_plain, (0, 1))(a, b))
    t = (_x(seed=2), _x(seed=3))
    np.testing.assert_array_equal(jax.jvp(_f, (a, b), t)[1], jax.jvp(_f_plain, (a, b), t)[1])


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the barriers are CPU-only")
def test_on_a_cpu_the_value_and_its_cotangent_pass_through_kept_conditionals():
    """XLA removes a conditional whose branches are the identity from the start; the barrier
    must survive compilation, forward and backward (a new jaxlib that drops it fails here)."""
    a, b = _x(), _x(seed=1)
    forward = jax.jit(_f).lower(a, b).compile().as_text()
    backward = jax.jit(jax.grad(_f)).lower(a, b).compile().as_text()
    assert forward.count("conditional(") == 1
    assert backward.count("conditional(") >= 2


def test_elsewhere_or_switched_off_there_is_no_barrier(monkeypatch):
    a = _x()
    assert materialize(a, backend="gpu") is a
    assert "cond" not in str(jax.make_jaxpr(lambda v: isolate(jnp.sin, jnp.cos, v, backend="tpu"))(a))
    monkeypatch.setenv(fusion_barrier.ENV_VAR, "0")
    assert not fusion_barrier.enabled("cpu")
    assert materialize(a, backend="cpu") is a
    monkeypatch.setenv(fusion_barrier.ENV_VAR, "1")
    assert fusion_barrier.enabled("cpu") and not fusion_barrier.enabled("gpu")
    assert "cond" in str(jax.make_jaxpr(lambda v: materialize(v, backend="cpu"))(a))


def test_a_bad_switch_is_named(monkeypatch):
    monkeypatch.setenv(fusion_barrier.ENV_VAR, "maybe")
    with pytest.raises(ValueError, match="PRDARTS_FUSION_BARRIERS='maybe'.*1 or 0"):
        fusion_barrier.enabled("cpu")


def test_isolate_runs_fn_and_the_fallback_only_when_the_first_element_is_nan():
    x = _x()
    fn, fallback = (lambda v, s: v * s), (lambda v, s: v * s + 100.0)
    s = jnp.float32(2.0)
    np.testing.assert_array_equal(isolate(fn, fallback, x, s, backend="cpu"), x * 2)
    nan_first = x.at[0, 0, 0, 0].set(jnp.nan)
    out = isolate(fn, fallback, nan_first, s, backend="cpu")
    np.testing.assert_array_equal(out[0, 0, 0, 1:], x[0, 0, 0, 1:] * 2 + 100.0)
    assert "cond" in str(jax.make_jaxpr(lambda v: isolate(jnp.sin, jnp.cos, v, backend="cpu"))(x))
    np.testing.assert_array_equal(isolate(fn, fallback, x, s, backend="gpu"), x * 2)
