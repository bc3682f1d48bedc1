import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prdarts_jax.models.formulations import use_impls
from prdarts_jax.models.ops import BatchNorm, OpSpec, apply_op, init_op, make_op, pointwise

C = 4
KEY = jax.random.PRNGKey(0)
X = jax.random.normal(jax.random.PRNGKey(1), (2, 8, 8, C))

OPS = [OpSpec.pool("max"), OpSpec.pool("avg"), OpSpec.skip(), OpSpec.conv(3),
       OpSpec.conv(5, (1,), 2), OpSpec.conv(1, (2, 1))]


@pytest.mark.parametrize("affine", [False, True])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("op", OPS, ids=str)
def test_op_output_shape(op, stride, affine):
    variables = init_op(op, KEY, C, stride=stride, affine=affine)
    y, _ = apply_op(op, variables, X, stride=stride, affine=affine, train=True)
    chex.assert_shape(y, (2, 8 // stride, 8 // stride, C))
    assert bool(jnp.all(jnp.isfinite(y)))


def test_conv_op_canonical_parameter_layout():
    v = init_op(OpSpec.conv(5, (2, 1)), KEY, C)
    shapes = jax.tree.map(jnp.shape, v["params"])
    assert shapes == {
        "layer_0": {"depthwise": (5, 5, C), "pointwise": (C, 2 * C)},
        "layer_1": {"depthwise": (5, 5, 2 * C), "pointwise": (2 * C, C)},
        "layer_2": {"depthwise": (5, 5, C), "pointwise": (C, C)},
    }
    assert set(v["batch_stats"]) == {"layer_0", "layer_1", "layer_2"}


def test_search_mode_is_non_affine_and_pools_have_bn():
    assert "params" not in init_op(OpSpec.pool("max"), KEY, C, affine=False)
    assert "bn" in init_op(OpSpec.pool("max"), KEY, C, affine=False)["batch_stats"]
    assert init_op(OpSpec.pool("avg"), KEY, C, affine=True) == {}
    affine = init_op(OpSpec.conv(3), KEY, C, affine=True)["params"]["layer_0"]
    assert set(affine["bn"]) == {"scale", "bias"}
    assert "bn" not in init_op(OpSpec.conv(3), KEY, C, affine=False)["params"]["layer_0"]


def test_skip_is_identity_at_stride_one():
    y, _ = apply_op(OpSpec.skip(), {}, X)
    np.testing.assert_array_equal(y, X)


def test_factorized_reduce_matches_definition():
    v = init_op(OpSpec.skip(), KEY, C, stride=2, affine=True)
    y, _ = apply_op(OpSpec.skip(), v, X, stride=2, affine=True, train=False)
    p = v["params"]
    r = np.maximum(np.asarray(X), 0)
    a = r[:, ::2, ::2] @ np.asarray(p["conv_1"])
    b = r[:, 1::2, 1::2] @ np.asarray(p["conv_2"])
    expected = np.concatenate([a, b], -1) / np.sqrt(1 + 1e-5)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


def test_factorized_reduce_handles_odd_sizes():
    x = jnp.ones((1, 7, 7, C))
    v = init_op(OpSpec.skip(), KEY, C, stride=2, affine=True, spatial=7)
    y, _ = apply_op(OpSpec.skip(), v, x, stride=2, affine=True)
    chex.assert_shape(y, (1, 4, 4, C))


@pytest.mark.parametrize("impl", ["xla", "native"])
def test_batchnorm_pytorch_semantics(impl):
    bn = BatchNorm(affine=False)
    x = jax.random.normal(KEY, (4, 3, 3, 2)) * 3 + 1
    v = bn.init(KEY, x, False)
    with use_impls(batch_norm=impl):
        y, upd = bn.apply(v, x, True, mutable=["batch_stats"])
    xn = np.asarray(x).reshape(-1, 2)
    np.testing.assert_allclose(np.asarray(y).reshape(-1, 2),
                               (xn - xn.mean(0)) / np.sqrt(xn.var(0) + 1e-5), rtol=1e-4,
                               atol=1e-5)
    np.testing.assert_allclose(upd["batch_stats"]["mean"], 0.1 * xn.mean(0), rtol=1e-5)
    np.testing.assert_allclose(upd["batch_stats"]["var"], 0.9 + 0.1 * xn.var(0, ddof=1),
                               rtol=1e-5)


@pytest.mark.parametrize("impl", ["xla", "native"])
@pytest.mark.parametrize("affine", [False, True])
def test_batchnorm_gradient_matches_autodiff_of_the_formula(affine, impl):
    """The hand-written backward of training-mode BN equals autodiff through mean and variance
    (and its own gradient, grad of grad, is defined for `xla`; `native` is first order)."""
    x = jax.random.normal(KEY, (4, 3, 3, 5)) * 2 + 0.5
    ct = jax.random.normal(jax.random.PRNGKey(2), x.shape)
    bn = BatchNorm(affine=affine)
    v = bn.init(KEY, x, False)
    if affine:
        v = {**v, "params": {"scale": jnp.arange(1.0, 6.0), "bias": jnp.arange(5.0)}}

    def loss(x, params):
        y, _ = bn.apply({**v, "params": params}, x, True, mutable=["batch_stats"])
        return jnp.sum(y * ct)

    def formula(x, params):
        mean = x.mean((0, 1, 2))
        y = (x - mean) / jnp.sqrt(jnp.square(x - mean).mean((0, 1, 2)) + 1e-5)
        if affine:
            y = y * params["scale"] + params["bias"]
        return jnp.sum(y * ct)

    params = v.get("params", {})
    with use_impls(batch_norm=impl):
        got = jax.grad(loss, argnums=(0, 1))(x, params)
    want = jax.grad(formula, argnums=(0, 1))(x, params)
    chex.assert_trees_all_close(got, want, rtol=1e-5, atol=1e-5)
    assert np.abs(np.asarray(got[0])).max() > 1e-2
    if impl == "native":
        return
    second = jax.grad(lambda x: jnp.sum(jnp.square(jax.grad(loss)(x, params))))(x)
    want2 = jax.grad(lambda x: jnp.sum(jnp.square(jax.grad(formula)(x, params))))(x)
    np.testing.assert_allclose(second, want2, rtol=1e-3, atol=1e-4)


def test_pointwise_and_its_hand_written_gradients_match_the_einsum():
    """The 1x1 conv (a matmul over flattened pixels, with its own backward) equals the einsum
    and autodiff's gradients of it, for C_in != C_out."""
    x = jax.random.normal(KEY, (3, 5, 4, 6))
    w = jax.random.normal(jax.random.PRNGKey(3), (6, 7))
    ct = jax.random.normal(jax.random.PRNGKey(4), (3, 5, 4, 7))
    want_y, want_vjp = jax.vjp(lambda x, w: jnp.einsum("nhwc,cd->nhwd", x, w), x, w)
    got_y, got_vjp = jax.vjp(pointwise, x, w)
    chex.assert_shape(got_y, (3, 5, 4, 7))
    np.testing.assert_allclose(got_y, want_y, rtol=1e-5, atol=1e-5)
    chex.assert_trees_all_close(got_vjp(ct), want_vjp(ct), rtol=1e-5, atol=1e-5)


def test_make_op_rejects_bad_stride():
    with pytest.raises(ValueError, match="stride"):
        make_op(OpSpec.conv(3), C, 3, False)
