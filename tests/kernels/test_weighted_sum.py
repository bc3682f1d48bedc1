import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prdarts_jax.kernels import native_kernels, primitives
from prdarts_jax.kernels.weighted_sum import weighted_sum
from tests.helpers import last_number_on_eight_cpu_devices

needs_compiler = pytest.mark.skipif(native_kernels.compiler() is None,
                                    reason="no C++ compiler on this machine")


def _operands(n, shape, seed=0, dtype=jnp.float32):
    rng = np.random.default_rng(seed)
    w = jax.nn.softmax(jnp.asarray(rng.standard_normal(n), jnp.float32))
    ys = tuple(jnp.asarray(rng.standard_normal(shape), dtype) for _ in range(n))
    g = jnp.asarray(rng.standard_normal(shape), dtype)
    return w, ys, g


def _value_and_grads(impl):
    def loss(w, ys, g):
        return jnp.sum(weighted_sum(w, ys, impl) * g)
    return jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))


@needs_compiler
@pytest.mark.parametrize("n, shape", [(1, (2, 3, 3, 4)), (4, (32, 8, 8, 16)),
                                      (6, (64, 16, 16, 40)), (2, (1, 1, 1, 1))])
def test_native_matches_xla_value_and_gradients(n, shape):
    w, ys, g = _operands(n, shape)
    got, want = _value_and_grads("native")(w, ys, g), _value_and_grads("xla")(w, ys, g)
    chex.assert_trees_all_close(got, want, rtol=2e-5, atol=1e-5)
    np.testing.assert_allclose(jax.jit(lambda w, ys: weighted_sum(w, ys, "native"))(w, ys),
                               sum(w[i] * ys[i] for i in range(n)), rtol=1e-6, atol=1e-6)


@needs_compiler
def test_native_is_one_call_forward_and_one_backward():
    w, ys, g = _operands(4, (8, 4, 4, 8))
    text = _value_and_grads("native").lower(w, ys, g).compile().as_text()
    assert text.count('custom_call_target="prdarts_weighted_sum"') == 1
    assert text.count('custom_call_target="prdarts_weighted_sum_grad"') == 1


@needs_compiler
def test_the_same_bits_on_every_run():
    w, ys, g = _operands(3, (64, 16, 16, 40), seed=3)
    f = _value_and_grads("native")
    chex.assert_trees_all_equal(f(w, ys, g), f(w, ys, g))


def test_off_switch_other_dtypes_and_the_formulation_in_use(monkeypatch):
    w, ys, g = _operands(3, (2, 3, 3, 4), dtype=jnp.bfloat16)
    assert "prdarts_weighted_sum" not in _value_and_grads("native").lower(w, ys, g).as_text()
    monkeypatch.setenv(native_kernels.ENV, "off")
    w, ys, g = _operands(3, (2, 3, 3, 4))
    assert "prdarts_weighted_sum" not in _value_and_grads("native").lower(w, ys, g).as_text()
    chex.assert_trees_all_equal(_value_and_grads("native")(w, ys, g),
                                _value_and_grads("xla")(w, ys, g))
    assert primitives.default_impl("weighted_sum", "cpu") == "xla"
    with primitives.use_impls(weighted_sum="native"):
        assert primitives.default_impl("weighted_sum") == "native"
    with pytest.raises(ValueError, match="unknown impl 'fast' for weighted_sum"):
        with primitives.use_impls(weighted_sum="fast"):
            pass


_SHARDED = """
import jax, numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from tests.kernels.test_weighted_sum import _operands, _value_and_grads
mesh = Mesh(np.array(jax.devices()), ("data",))
assert len(jax.devices()) == 8
w, ys, g = _operands(3, (16, 4, 4, 8))
batch = NamedSharding(mesh, PartitionSpec("data"))
sharded = (w, jax.device_put(ys, batch), jax.device_put(g, batch))
a, b = _value_and_grads("native")(*sharded), _value_and_grads("native")(w, ys, g)
print(max(float(np.abs(np.asarray(x) - np.asarray(y)).max())
          for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))))
"""


@needs_compiler
def test_native_on_a_batch_sharded_over_devices_equals_one_device():
    """XLA gathers the operands of a call it cannot split: correct, not parallel."""
    assert last_number_on_eight_cpu_devices(_SHARDED) < 1e-5
