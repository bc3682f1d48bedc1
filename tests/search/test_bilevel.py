import jax
import jax.numpy as jnp
import numpy as np

from prdarts_jax.runtime import compile_timer
from prdarts_jax.search import bilevel


def _trees():
    """Shapes no other test uses: optax's `init` would compile a broadcast for each."""
    params = {"conv": jnp.ones((3, 3, 29)), "bn": {"scale": jnp.ones(31)},
              "steps": [jnp.ones((2, 37))]}
    alphas = {"normal": [jnp.ones(41), jnp.ones(43)], "reduce": [jnp.ones(41)]}
    return params, alphas


def test_fresh_optimizer_states_are_optax_inits_without_a_compile():
    h = bilevel.Hyper()
    params, alphas = _trees()
    before = compile_timer.thread_counts()
    got = bilevel.fresh_optimizer_states(h, params, alphas)
    assert compile_timer.thread_counts() == before
    want = {"w_opt": bilevel.weight_tx(h).init(params), "a_opt": bilevel.alpha_tx(h).init(alphas)}
    assert jax.tree.structure(got) == jax.tree.structure(want)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        assert isinstance(g, jax.Array) and g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_array_equal(g, w)


def test_fresh_optimizer_states_trace_inside_a_program():
    h = bilevel.Hyper()
    params, alphas = _trees()
    got = jax.eval_shape(lambda p, a: bilevel.fresh_optimizer_states(h, p, a), params, alphas)
    want = jax.eval_shape(lambda p, a: {"w_opt": bilevel.weight_tx(h).init(p),
                                        "a_opt": bilevel.alpha_tx(h).init(a)}, params, alphas)
    assert got == want
