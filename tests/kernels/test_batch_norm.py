import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prdarts_jax.kernels import native_kernels, primitives
from prdarts_jax.kernels.batch_norm import normalize_eval, normalize_train
from tests.helpers import last_number_on_eight_cpu_devices

needs_compiler = pytest.mark.skipif(native_kernels.compiler() is None,
                                    reason="no C++ compiler on this machine")


def _operands(shape, seed=0, dtype=jnp.float32):
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.standard_normal(shape) * 3 + 1.5, dtype)
    ra_mean = jnp.asarray(rng.standard_normal(shape[-1]), jnp.float32)
    ra_var = jnp.asarray(rng.uniform(0.5, 2.0, shape[-1]), jnp.float32)
    g = jnp.asarray(rng.standard_normal(shape), dtype)
    return x, ra_mean, ra_var, g


def _bn(impl):
    """(y, running mean, running variance, input gradient of Σ y·g), jitted."""
    def outputs(x, ra_mean, ra_var, g):
        def loss(x):
            y, m, v = normalize_train(x, ra_mean, ra_var, momentum=0.9, eps=1e-5, impl=impl)
            return jnp.sum(y * g), (y, m, v)
        dx, (y, m, v) = jax.grad(loss, has_aux=True)(x)
        return y, m, v, dx
    return jax.jit(outputs)


@needs_compiler
@pytest.mark.parametrize("shape", [
    (4, 5, 5, 3),        # fewer channels than a SIMD vector
    (32, 8, 8, 16),      # the quick search's
    (64, 16, 16, 40),    # several row blocks
    (3, 1, 1, 7),        # three rows
])
def test_native_matches_xla_forward_gradient_and_running_statistics(shape):
    operands = _operands(shape)
    want = _bn("xla")(*operands)
    got = _bn("native")(*operands)
    for name, a, b in zip(("y", "running mean", "running var", "dx"), got, want):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * float(jnp.abs(b).max()),
                                   err_msg=name)
    again = _bn("native")(*operands)
    chex.assert_trees_all_equal(got, again)    # fixed row blocks: the same bits every call


@needs_compiler
def test_native_runs_as_two_library_calls_and_leaves_xla_less_to_compile():
    operands = _operands((8, 4, 4, 8))
    texts = {impl: _bn(impl).lower(*operands).compile().as_text() for impl in ("xla", "native")}
    assert "prdarts_batch_norm_forward" in texts["native"]
    assert "prdarts_batch_norm_backward" in texts["native"]
    assert "prdarts_batch_norm" not in texts["xla"]
    assert texts["native"].count(" fusion(") < texts["xla"].count(" fusion(")


_SHARDED = """
import jax, numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from tests.kernels.test_batch_norm import _bn, _operands
mesh = Mesh(np.array(jax.devices()), ("data",))
assert len(jax.devices()) == 8
x, ra_mean, ra_var, g = operands = _operands((16, 4, 4, 8))
batch = NamedSharding(mesh, PartitionSpec("data"))
sharded = (jax.device_put(x, batch), ra_mean, ra_var, jax.device_put(g, batch))
diffs = jax.tree.map(lambda a, b: float(np.abs(a - b).max()), _bn("native")(*sharded),
                     _bn("native")(*operands))
print(max(jax.tree.leaves(diffs)))
"""


@needs_compiler
def test_native_on_a_batch_sharded_over_devices_equals_one_device():
    """XLA gathers the operand of a call it cannot split: the statistics stay the global
    batch's, as with XLA's own BatchNorm under data parallelism (8 CPU devices)."""
    assert last_number_on_eight_cpu_devices(_SHARDED) < 1e-6


def test_off_switch_and_other_dtypes_compute_as_xla(monkeypatch):
    x, ra_mean, ra_var, g = _operands((4, 3, 3, 5), dtype=jnp.bfloat16)
    assert "prdarts_batch_norm" not in _bn("native").lower(x, ra_mean, ra_var, g).as_text()
    monkeypatch.setenv(native_kernels.ENV, "off")
    operands = _operands((4, 3, 3, 5))
    assert "prdarts_batch_norm" not in _bn("native").lower(*operands).as_text()
    chex.assert_trees_all_equal(_bn("native")(*operands), _bn("xla")(*operands))


def test_the_formulation_in_use_is_chosen_like_the_others(monkeypatch):
    assert primitives.default_impl("batch_norm", "cpu") == "xla"
    assert primitives.default_impl("batch_norm", "gpu") == "xla"
    with primitives.use_impls(batch_norm="native"):
        assert primitives.default_impl("batch_norm") == "native"
    assert primitives.default_impl("batch_norm") == "xla"
    with pytest.raises(ValueError, match="unknown impl 'fast' for batch_norm; valid: xla, native"):
        with primitives.use_impls(batch_norm="fast"):
            pass
    monkeypatch.setenv("PRDARTS_BN_IMPL", "native")
    assert primitives.default_impl("batch_norm") == "native"
    monkeypatch.setenv("PRDARTS_BN_IMPL", "fast")
    with pytest.raises(ValueError, match="PRDARTS_BN_IMPL value 'fast'"):
        primitives.default_impl("batch_norm")



@needs_compiler
@pytest.mark.parametrize("shape", [(4, 5, 5, 3), (32, 8, 8, 16), (3, 1, 1, 7)])
def test_native_evaluation_mode_matches_xla_and_its_gradient(shape):
    x, ra_mean, ra_var, g = _operands(shape)

    def outputs(impl):
        def loss(x, m, v):
            y = normalize_eval(x, m, v, eps=1e-5, impl=impl)
            return jnp.sum(y * g), y
        return jax.jit(jax.grad(loss, argnums=(0, 1, 2), has_aux=True))(x, ra_mean, ra_var)

    (grads_n, y_n), (grads_x, y_x) = outputs("native"), outputs("xla")
    np.testing.assert_allclose(y_n, y_x, rtol=1e-6, atol=1e-6)
    for a, b in zip(grads_n, grads_x):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    text = jax.jit(lambda x: normalize_eval(x, ra_mean, ra_var, eps=1e-5, impl="native")
                   ).lower(x).compile().as_text()
    assert "prdarts_batch_norm_inference" in text and "rsqrt" not in text
