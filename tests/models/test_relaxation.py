"""The mixed op's relaxation: softmax(α), or Concrete (Gumbel-softmax) samples of α."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prdarts_jax.models.relaxation import (
    SOFTMAX,
    GumbelSample,
    Relaxation,
    gumbel_softmax,
    training_sample,
)
from prdarts_jax.models.relaxation import edge_weights as _edge_weights
from prdarts_jax.space.spaces import CELL_TYPES

edge_weights = jax.jit(_edge_weights)   # one dispatch instead of hundreds


def _alphas(seed=0, sizes=(1, 2, 3, 4, 5, 6, 7, 2, 3, 4, 5, 6, 7, 8)):
    key = jax.random.PRNGKey(seed)
    return {t: [jax.random.normal(jax.random.fold_in(key, 100 * i + e), (n,))
                for e, n in enumerate(sizes)] for i, t in enumerate(CELL_TYPES)}


def _sample(seed, tau=1.0, hard=False):
    return GumbelSample(jax.random.PRNGKey(seed), jnp.float32(tau), hard)


def test_softmax_relaxation_is_plain_softmax_and_draws_nothing():
    alphas = _alphas()
    w = _edge_weights(alphas)
    for t in CELL_TYPES:
        for a, we in zip(alphas[t], w[t]):
            np.testing.assert_array_equal(we, jax.nn.softmax(a))
    assert training_sample(SOFTMAX, jax.random.PRNGKey(0)) is None
    assert training_sample(Relaxation("gumbel"), jax.random.PRNGKey(0), 1.0) is not None
    for relaxation, tau in ((SOFTMAX, 1.0), (Relaxation("gumbel"), None)):
        with pytest.raises(TypeError, match="temperature argument"):
            training_sample(relaxation, jax.random.PRNGKey(0), tau)


def test_gumbel_weights_sum_to_one_and_follow_the_key():
    alphas = _alphas()
    a, b, c = (edge_weights(alphas, _sample(s)) for s in (1, 1, 2))
    for t in CELL_TYPES:
        for wa, wb, wc, al in zip(a[t], b[t], c[t], alphas[t]):
            assert wa.shape == al.shape and bool(jnp.all(wa >= 0))
            np.testing.assert_allclose(float(jnp.sum(wa)), 1.0, rtol=1e-6)
            np.testing.assert_array_equal(wa, wb)                    # same key, same sample
            if al.size > 1:
                assert not np.allclose(wa, wc)                      # another key, another
                assert not np.allclose(wa, jax.nn.softmax(al))      # not deterministic
    # the two cell types draw independently even where their α are equal
    same = {t: alphas["normal"] for t in CELL_TYPES}
    w = edge_weights(same, _sample(3))
    assert not np.allclose(w["normal"][6], w["reduce"][6])


def test_hard_samples_are_one_hot_with_a_gradient_to_alpha():
    alphas = _alphas()
    soft, hard = (edge_weights(alphas, _sample(4, 0.7, h)) for h in (False, True))
    for t in CELL_TYPES:
        for ws, wh in zip(soft[t], hard[t]):
            np.testing.assert_allclose(wh, jax.nn.one_hot(jnp.argmax(ws), ws.size), atol=1e-6)
    c = jnp.arange(5.0)
    key = jax.random.PRNGKey(5)
    g = jax.grad(lambda a: jnp.sum(gumbel_softmax(key, a, 0.7, True) * c))(alphas["normal"][4])
    assert bool(jnp.all(jnp.isfinite(g))) and float(jnp.max(jnp.abs(g))) > 1e-3
    g_soft = jax.grad(lambda a: jnp.sum(gumbel_softmax(key, a, 0.7, False) * c))(
        alphas["normal"][4])
    np.testing.assert_allclose(g, g_soft, rtol=1e-5)   # straight through: the soft gradient


def test_a_lower_tau_gives_sharper_weights():
    alphas = _alphas()
    for seed in range(5):
        cold, warm = (edge_weights(alphas, _sample(seed, tau)) for tau in (0.2, 5.0))
        for t in CELL_TYPES:
            for wc, ww in zip(cold[t], warm[t]):
                if wc.size > 1:
                    assert float(jnp.max(wc)) > float(jnp.max(ww))
                    assert int(jnp.argmax(wc)) == int(jnp.argmax(ww))   # the same noise


def test_hard_samples_follow_softmax_of_alpha():
    """The Gumbel-max trick: argmax(α + g) is distributed as softmax(α) (any τ)."""
    alpha = jnp.array([1.0, 0.0, -1.0, 0.5])
    keys = jax.random.split(jax.random.PRNGKey(6), 20000)
    picks = jax.vmap(lambda k: jnp.argmax(gumbel_softmax(k, alpha, 3.0, True)))(keys)
    freq = np.bincount(np.asarray(picks), minlength=4) / len(keys)
    np.testing.assert_allclose(freq, jax.nn.softmax(alpha), atol=0.015)


def test_the_supernet_runs_on_the_sample_shared_by_the_cells_of_a_type():
    """A hard sample's forward is the softmax forward of α = 1e4 · one_hot(its argmax): the
    sample, one per edge and cell type, replaces softmax(α) in every cell of that type."""
    from prdarts_jax.models.supernet import Supernet, init_alphas
    from prdarts_jax.space.opspec import OpSpec

    edges = tuple((OpSpec.pool("max"), OpSpec.pool("avg"), OpSpec.skip()) for _ in range(14))
    net = Supernet(edges, edges, 10, c=4, layers=3)
    alphas = init_alphas(jax.random.PRNGKey(0), edges, edges, 1.0)
    x = jax.random.normal(jax.random.PRNGKey(1), (2, 8, 8, 1))
    v = jax.jit(lambda k: net.init(k, x, alphas, False))(jax.random.PRNGKey(2))
    sample = _sample(7, 0.5, hard=True)
    picked = {t: [1e4 * w for w in ws] for t, ws in edge_weights(alphas, sample).items()}
    forward = jax.jit(lambda a, s: net.apply(v, x, a, False, s))
    out_hard, out_picked = forward(alphas, sample), forward(picked, None)
    np.testing.assert_allclose(out_hard, out_picked, rtol=1e-4, atol=1e-5)
    assert not np.allclose(out_hard, forward(alphas, None), atol=1e-3)
