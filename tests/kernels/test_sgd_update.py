import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prdarts_jax.kernels import native_kernels, primitives
from prdarts_jax.kernels.sgd_update import GROUP
from prdarts_jax.optim import sgd, sgd_step
from tests.helpers import last_number_on_eight_cpu_devices

needs_compiler = pytest.mark.skipif(native_kernels.compiler() is None,
                                    reason="no C++ compiler on this machine")
HYPER = {"momentum": 0.9, "weight_decay": 3e-4, "grad_clip": 5.0}
SHAPES = {"dw": (3, 3, 8), "pw": (8, 16), "bias": (16,), "odd": (7,), "one": (1,),
          "empty": (0,), "big": (40, 40, 24)}   # "big": several blocks of the kernel's split


def _operands(grad_scale, seed=0, dtype=jnp.float32):
    """Params, a state with non-zero momenta, gradients whose global norm is about
    `grad_scale` · 47 (the clip is 5)."""
    rng = np.random.default_rng(seed)
    params = {k: jnp.asarray(rng.standard_normal(s), dtype) for k, s in SHAPES.items()}
    grads = {k: jnp.asarray(rng.standard_normal(s) * grad_scale, dtype)
             for k, s in SHAPES.items()}
    state = sgd(**HYPER).init(params)
    state = (*state[:-1], state[-1]._replace(trace=jax.tree.map(lambda p: 0.3 * p, params)))
    return params, state, grads


def _step(impl):
    def step(params, state, grads, lr):
        with primitives.use_impls(sgd_update=impl):
            return sgd_step(params, state, grads, lr, **HYPER)
    return jax.jit(step)


def _norm(grads):
    return float(np.sqrt(sum(np.sum(np.square(np.asarray(g, np.float64)))
                             for g in jax.tree.leaves(grads))))


@needs_compiler
@pytest.mark.parametrize("grad_scale", [1e-3, 1.0, 30.0])
def test_native_matches_optax_chain(grad_scale):
    """Unclipped, every float32 operation is XLA's (the multiply-adds fused alike); clipped,
    the global norm is summed in another order: equal to rounding."""
    params, state, grads = _operands(grad_scale)
    clipped = _norm(grads) >= HYPER["grad_clip"]
    assert clipped == (grad_scale > 1e-3)
    want = _step("xla")(params, state, grads, 0.05)
    got = _step("native")(params, state, grads, 0.05)
    chex.assert_trees_all_equal_structs(got, want)
    chex.assert_trees_all_close(got, want, rtol=1e-6, atol=1e-7)
    gcc = "Free Software Foundation" in native_kernels._compiler_version(native_kernels.compiler())
    if not clipped and gcc:
        chex.assert_trees_all_equal(got, want)   # GCC fuses the multiply-adds as XLA does


@needs_compiler
def test_native_is_a_few_library_calls_with_params_and_momenta_updated_in_place():
    """Many leaves (more than a group): one sum-of-squares and one update call per group of
    `GROUP` leaves, and only the norm's scalar arithmetic left for XLA to compile."""
    rng = np.random.default_rng(1)
    params = {f"w{i:03d}": jnp.asarray(rng.standard_normal((4, 1 + i % 3)), jnp.float32)
              for i in range(2 * GROUP + 5)}
    grads = jax.tree.map(lambda p: 2.0 * p, params)
    state = sgd(**HYPER).init(params)
    step = jax.jit(_step("native"), donate_argnums=(0, 1))
    text = step.lower(params, state, grads, 0.05).compile().as_text()
    assert text.count("custom_call_target=\"prdarts_sgd_update\"") == 3
    assert text.count("custom_call_target=\"prdarts_sum_squares\"") == 3
    assert text.count(" fusion(") <= 2
    xla = _step("xla").lower(params, state, grads, 0.05).compile().as_text()
    assert xla.count(" fusion(") >= len(params)
    want = _step("xla")(params, state, grads, 0.05)
    got = step(*jax.tree.map(jnp.copy, (params, state)), grads, 0.05)
    chex.assert_trees_all_close(got, want, rtol=1e-6, atol=1e-7)


_REPLICATED = """
import jax, numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from tests.kernels.test_sgd_update import _operands, _step
mesh = Mesh(np.array(jax.devices()), ("data",))
assert len(jax.devices()) == 8
operands = _operands(30.0)
everywhere = jax.device_put(operands, NamedSharding(mesh, PartitionSpec()))
a, b = _step("native")(*everywhere, 0.05), _step("native")(*operands, 0.05)
print(max(float(np.abs(np.asarray(x) - np.asarray(y)).max(initial=0.0))
          for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))))
"""


@needs_compiler
def test_native_on_state_replicated_over_devices_equals_one_device():
    assert last_number_on_eight_cpu_devices(_REPLICATED) == 0.0


def test_off_switch_and_other_dtypes_compute_as_the_chain(monkeypatch):
    params, state, grads = _operands(1.0, dtype=jnp.bfloat16)
    state = jax.tree.map(lambda x: x.astype(jnp.bfloat16), state)
    assert "prdarts_sgd_update" not in _step("native").lower(params, state, grads, 0.05).as_text()
    monkeypatch.setenv(native_kernels.ENV, "off")
    operands = _operands(30.0)
    assert "prdarts_sgd_update" not in _step("native").lower(*operands, 0.05).as_text()
    chex.assert_trees_all_equal(_step("native")(*operands, 0.05), _step("xla")(*operands, 0.05))


def test_the_formulation_in_use_is_chosen_like_the_others(monkeypatch):
    assert primitives.default_impl("sgd_update", "cpu") == "xla"
    with primitives.use_impls(sgd_update="native"):
        assert primitives.default_impl("sgd_update") == "native"
    assert primitives.default_impl("sgd_update") == "xla"
    with pytest.raises(ValueError, match="unknown impl 'adam' for sgd_update; valid: xla, native"):
        with primitives.use_impls(sgd_update="adam"):
            pass
    monkeypatch.setenv("PRDARTS_SGD_IMPL", "native")
    assert primitives.default_impl("sgd_update") == "native"
