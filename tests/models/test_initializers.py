import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prdarts_jax.models import initializers
from prdarts_jax.models.ops import BatchNorm, ReLUConvBN
from prdarts_jax.models.supernet import Supernet, init_alphas
from prdarts_jax.space.opspec import OpSpec

UNOPTIMIZED = {"xla_backend_optimization_level": 0}


def _compiled_init(module, key, *args):
    """What `init_variables` replaces: the whole `init`, compiled without optimisation."""
    init = jax.jit(lambda k: module.init(k, *args))
    return init.lower(key).compile(compiler_options=UNOPTIMIZED)(key)


def _assert_same_bits(got, want):
    assert jax.tree.structure(got) == jax.tree.structure(want)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_supernet_variables_are_the_bits_of_the_compiled_init(monkeypatch):
    """Every parameter drawn on the host (`host_random`): no program compiled for them."""
    ops = tuple(OpSpec.parse(o) for o in ("maxpool3", "skip", "conv_k3_d1", "conv_k5_d2_m1"))
    edges = (ops,) * 14
    net = Supernet(edges, edges, 10, c=4, layers=3)
    alphas = init_alphas(jax.random.PRNGKey(1), edges, edges)
    x = jnp.zeros((2, 8, 8, 1), jnp.float32)
    key = jax.random.PRNGKey(7)
    want = dict(_compiled_init(net, key, x, alphas, False))

    def no_program(groups, *settings):
        raise AssertionError(f"compiled a drawer for {len(groups)} kinds of parameter")
    monkeypatch.setattr(initializers, "_drawer", no_program)
    got = initializers.init_variables(net, key, x, alphas, False)
    _assert_same_bits(got, want)
    assert initializers._recorded(net, key, (x, alphas, False)) is not None  # not the fallback
    np.testing.assert_array_equal(got["batch_stats"]["stem"]["bn"]["var"], 1.0)


def test_affine_batch_norm_and_constants():
    key = jax.random.PRNGKey(3)
    x = jnp.ones((2, 4, 4, 3), jnp.float32)
    for module in (ReLUConvBN(5, True), BatchNorm(True)):
        got = initializers.init_variables(module, key, x, True)
        _assert_same_bits(got, dict(_compiled_init(module, key, x, True)))
    got = initializers.init_variables(BatchNorm(True), key, x, True)
    np.testing.assert_array_equal(got["params"]["scale"], 1.0)
    np.testing.assert_array_equal(got["params"]["bias"], 0.0)


class _Foreign(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Dense(3)(x) + self.param("c", initializers.uniform_fan_in(4), (3,))


@pytest.mark.parametrize("key", [jax.random.PRNGKey(0), jax.random.key(0)],
                         ids=["raw key", "typed key"])
def test_other_initialisers_or_keys_fall_back_to_the_compiled_init(key):
    """Flax's own initialisers (here the Dense's lecun normal) are not recorded, nor is a typed
    key: the whole init is compiled, with the same values as `init` itself."""
    x = jnp.ones((2, 4), jnp.float32)
    assert initializers._recorded(_Foreign(), key, (x,)) is None
    got = initializers.init_variables(_Foreign(), key, x)
    want = _Foreign().init(key, x)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6)


def test_initialisers_outside_a_recording_draw_as_before():
    key = jax.random.PRNGKey(2)
    w = initializers.uniform_fan_in(16)(key, (3, 5))
    np.testing.assert_array_equal(w, jax.random.uniform(key, (3, 5), jnp.float32, -0.25, 0.25))
    assert initializers.uniform_fan_in(16) == initializers.UniformFanIn(0.25)
    np.testing.assert_array_equal(initializers.Constant(1.0)((2,), jnp.float32), [1.0, 1.0])
    np.testing.assert_array_equal(initializers.Constant(0.0)(key, (2,)), [0.0, 0.0])


def test_a_traced_key_falls_back_to_tracing_the_init():
    """Inside a jit the key is a tracer: nothing is recorded, `init` itself is traced."""
    x = jnp.ones((2, 4, 4, 3), jnp.float32)
    got = jax.jit(lambda k: initializers.init_variables(ReLUConvBN(5, False), k, x, True))(
        jax.random.PRNGKey(4))
    want = ReLUConvBN(5, False).init(jax.random.PRNGKey(4), x, True)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6)


class _AssignsDuringInit(nn.Module):
    @nn.compact
    def __call__(self, x):
        v = self.variable("batch_stats", "v", initializers.Constant(0.0), (2,), jnp.float32)
        v.value = v.value + x.sum()
        return x


class _Wraps(nn.Module):
    @nn.compact
    def __call__(self, x):
        init = initializers.uniform_fan_in(4)
        return x + self.param("w", lambda k, s: 2.0 * init(k, s), (3,))


@pytest.mark.parametrize("module", [_AssignsDuringInit(), _Wraps()],
                         ids=["assigned during init", "initialiser wrapped"])
def test_what_recording_cannot_serve_falls_back_to_init(module):
    """A value assigned during `init`, or an initialiser computing with another's value, is
    not what a recorded initialiser draws: the whole `init` is compiled instead."""
    x = jnp.full((2, 3), 1.5, jnp.float32)
    key = jax.random.PRNGKey(6)
    assert initializers._recorded(module, key, (x,)) is None
    got = initializers.init_variables(module, key, x)
    want = module.init(key, x)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6)


def test_constant_takes_its_dtype_by_keyword():
    got = initializers.Constant(2.0)(jax.random.PRNGKey(0), (2,), dtype=jnp.bfloat16)
    assert got.dtype == jnp.bfloat16 and np.all(np.asarray(got, np.float32) == 2.0)


def test_kinds_numpy_cannot_draw_are_drawn_by_the_compiled_program(monkeypatch):
    """The drawer serves where `host_random` cannot (another dtype, JAX's legacy bits): the
    same values as the host's, which the test above holds to the compiled init."""
    ops = tuple(OpSpec.parse(o) for o in ("skip", "conv_k3_d1", "conv_k5_d2_m1"))
    net = Supernet((ops,) * 14, (ops,) * 14, 10, c=4, layers=3)
    alphas = init_alphas(jax.random.PRNGKey(1), net.normal, net.reduce)
    x, key = jnp.zeros((2, 8, 8, 1), jnp.float32), jax.random.PRNGKey(6)
    on_host = initializers.init_variables(net, key, x, alphas, False)
    calls = []
    drawer = initializers._drawer
    monkeypatch.setattr(initializers, "_drawer", lambda groups, *settings:
                        calls.append(groups) or drawer(groups, *settings))
    monkeypatch.setattr(initializers.host_random, "supported", lambda shape, dtype: False)
    _assert_same_bits(initializers.init_variables(net, key, x, alphas, False), on_host)
    assert len(calls) == 1 and len(calls[0]) > 1


@pytest.mark.parametrize("setting, value", [(jax.threefry_partitionable, False),
                                            (jax.default_prng_impl, "philox4x32")])
def test_other_random_bits_are_drawn_as_init_draws_them(setting, value):
    """Under JAX's legacy bits or another generator with two-word keys, NumPy's threefry
    would draw other values: the drawer (or init) draws them, as `Module.init` does."""
    with setting(value):
        key, x = jax.random.PRNGKey(4), jnp.ones((2, 4, 4, 3), jnp.float32)
        assert not initializers.host_random.supported((5, 3), jnp.float32)
        got = initializers.init_variables(ReLUConvBN(5, True), key, x, True)
        _assert_same_bits(got, dict(_compiled_init(ReLUConvBN(5, True), key, x, True)))
