import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prdarts_jax.models.morphisms import morph
from prdarts_jax.models.supernet import (
    SearchCell,
    Supernet,
    edge_inputs,
    init_alphas,
    reduction_indices,
)
from prdarts_jax.search.boundary import transfer_variables
from prdarts_jax.search.pools import initial_pools, step_pools
from prdarts_jax.search.structure import init_variables
from prdarts_jax.space.opspec import INITIAL_POOL, OpSpec
from prdarts_jax.space.spaces import PRESETS

C, LAYERS = 4, 3
EDGES = tuple(INITIAL_POOL for _ in range(14))


def test_edge_layout_and_reductions():
    assert [i for _, i in edge_inputs()] == [0, 1, 0, 1, 2, 0, 1, 2, 3, 0, 1, 2, 3, 4]
    assert reduction_indices(8) == (2, 5)
    assert reduction_indices(20) == (6, 13)


@pytest.mark.parametrize("reduction", [False, True])
def test_cell_output_shapes(reduction):
    cell = SearchCell(EDGES, C, reduction, reduction_prev=False)
    s = jnp.zeros((2, 8, 8, 3 * C))
    w = [jnp.ones(len(ops)) / len(ops) for ops in EDGES]
    out = jax.eval_shape(lambda: cell.init_with_output(jax.random.PRNGKey(0), s, s, w, True)[0])
    side = 4 if reduction else 8
    assert out.shape == (2, side, side, 4 * C)
    mean_cell = SearchCell(EDGES, C, reduction, False, reduce_output="mean")
    out = jax.eval_shape(lambda: mean_cell.init_with_output(jax.random.PRNGKey(0), s, s, w,
                                                            True)[0])
    assert out.shape == (2, side, side, C)


def test_supernet_logits_shape_and_param_keys():
    net = Supernet(EDGES, EDGES, 10, c=C, layers=LAYERS)
    alphas = init_alphas(jax.random.PRNGKey(0), EDGES, EDGES)
    x = jnp.zeros((2, 8, 8, 1))
    logits, v = jax.eval_shape(lambda: net.init_with_output(jax.random.PRNGKey(1), x, alphas,
                                                            False))
    assert logits.shape == (2, 10)
    assert set(v["params"]["cell_0"]["edge_0"]) == {"conv_k3_d1"}
    assert set(v["batch_stats"]["cell_0"]["edge_0"]) == {"maxpool3", "avgpool3", "conv_k3_d1"}
    assert "skip" in v["params"]["cell_1"]["edge_0"]  # FactorizedReduce on a reduction edge


def test_alpha_gradients_flow_into_every_edge():
    cell = SearchCell(EDGES, C, reduction=False, reduction_prev=False)
    s0 = jax.random.normal(jax.random.PRNGKey(0), (2, 6, 6, C))
    s1 = jax.random.normal(jax.random.PRNGKey(1), (2, 6, 6, C))
    alphas = [0.1 * jax.random.normal(jax.random.PRNGKey(e), (4,)) for e in range(14)]
    v = cell.init(jax.random.PRNGKey(2), s0, s1, [jnp.ones(4)] * 14, False)

    def loss(a):
        w = [jax.nn.softmax(x) for x in a]
        y, _ = cell.apply(v, s0, s1, w, True, mutable=["batch_stats"])
        return jnp.sum(jnp.sin(y))

    grads = jax.jit(jax.grad(loss))(alphas)
    for g in grads:
        assert g.shape == (4,) and bool(jnp.all(jnp.isfinite(g))) and float(jnp.abs(g).sum()) > 0


@pytest.fixture(scope="module")
def first_cycle():
    pools = initial_pools()
    net = Supernet(EDGES, EDGES, 10, c=C, layers=LAYERS)
    alphas = init_alphas(jax.random.PRNGKey(0), EDGES, EDGES)
    variables = init_variables(net, jax.random.PRNGKey(1), (8, 8, 1), alphas)
    rng = np.random.default_rng(0)
    alpha_np = {t: [rng.normal(size=4) for _ in range(14)] for t in ("normal", "reduce")}
    new_pools, report = step_pools(pools, alpha_np, keep=4, morphs=2, final=False,
                                   space=PRESETS["DL"], rng=rng)
    new_vars = transfer_variables(variables, report, new_pools, layers=LAYERS,
                                  key=jax.random.PRNGKey(3))
    return variables, new_pools, report, new_vars


def test_transfer_matches_new_supernet_structure(first_cycle):
    _, new_pools, _, new_vars = first_cycle
    edges = {t: tuple(e.ops for e in new_pools[t]) for t in ("normal", "reduce")}
    net = Supernet(edges["normal"], edges["reduce"], 10, c=C, layers=LAYERS)
    alphas = init_alphas(jax.random.PRNGKey(0), edges["normal"], edges["reduce"])
    expected = jax.eval_shape(lambda: net.init(jax.random.PRNGKey(0), jnp.zeros((2, 8, 8, 1)),
                                               alphas, False))
    shapes = lambda t: jax.tree.map(lambda a: (a.shape, a.dtype), t)
    assert shapes(dict(expected)) == shapes(new_vars)


def test_survivors_keep_their_values_bit_exact(first_cycle):
    old, new_pools, report, new = first_cycle
    for i, t in enumerate(("normal", "reduce", "reduce")):
        for e, rep in enumerate(report[t]):
            for op in rep.survivors:
                for coll in ("params", "batch_stats"):
                    src = old[coll][f"cell_{i}"].get(f"edge_{e}", {}).get(str(op))
                    if src is not None:
                        chex.assert_trees_all_equal(new[coll][f"cell_{i}"][f"edge_{e}"][str(op)],
                                                    src)
            for op in rep.dropped:
                assert str(op) not in new["params"][f"cell_{i}"].get(f"edge_{e}", {})
    chex.assert_trees_all_equal(new["params"]["stem"], old["params"]["stem"])
    chex.assert_trees_all_equal(new["params"]["classifier"], old["params"]["classifier"])


def test_children_are_the_morphism_of_their_parent_in_each_cell(first_cycle):
    old, _, report, new = first_cycle
    births = [(t, e, b) for t in ("normal", "reduce") for e, rep in enumerate(report[t])
              for b in rep.added]
    assert births
    checked = 0
    for t, e, b in births:
        if b.kind == 5:
            continue  # widening draws fresh filters; its structure is checked above
        for i in ([0] if t == "normal" else [1, 2]):
            cell, edge = f"cell_{i}", f"edge_{e}"
            parent = {coll: old[coll][cell][edge][str(b.parent)] for coll in
                      ("params", "batch_stats")}
            _, expected = morph(b.kind, b.parent, parent)
            got = {coll: new[coll][cell][edge][str(b.child)] for coll in ("params", "batch_stats")}
            chex.assert_trees_all_equal(got, expected)
            checked += 1
    assert checked > 0


def _gradients_and_stats(net, variables, alphas, x):
    def loss(params):
        logits, upd = net.apply({**variables, "params": params}, x, alphas, True,
                                mutable=["batch_stats"])
        return jnp.sum(logits ** 2), upd
    return jax.jit(jax.grad(loss, has_aux=True))(variables["params"])


def test_ops_traced_once_compute_the_same_bits_as_inlined_ops(monkeypatch):
    """Each supernet op is a nested jit (`ops._traced_once`), traced once per shape; XLA
    inlines it, so gradients and batch statistics are those of the inlined modules, bit for
    bit."""
    from prdarts_jax.models import ops

    edges = tuple(("maxpool3", "skip", "conv_k3_d1", "conv_k5_d2_m2")[:2 + e % 3]
                  for e in range(14))
    edges = tuple(tuple(OpSpec.parse(o) for o in ops_) for ops_ in edges)
    net = Supernet(edges, edges, 10, c=C, layers=LAYERS)
    key = jax.random.PRNGKey(0)
    alphas = init_alphas(key, edges, edges, scale=1.0)
    x = jax.random.normal(key, (4, 8, 8, 1))
    variables = init_variables(net, key, (8, 8, 1), alphas)
    once = _gradients_and_stats(net, variables, alphas, x)
    monkeypatch.setattr(ops, "_traced_once", lambda cls, formulations: cls)
    inlined = _gradients_and_stats(net, variables, alphas, x)
    chex.assert_trees_all_equal(once, inlined)


def test_ops_traced_once_follow_the_formulation_in_force():
    from prdarts_jax.models.formulations import use_impls
    from prdarts_jax.models.ops import init_op, make_op

    op = OpSpec.parse("maxpool3")
    x = jnp.ones((2, 6, 6, 4))
    variables = init_op(op, jax.random.PRNGKey(0), 4)

    def traced(pool):
        with use_impls(pool=pool):
            module = make_op(op, 4, 1, False, traced_once=True)
            return str(jax.make_jaxpr(lambda v: module.apply(v, x, True,
                                                             mutable=["batch_stats"]))(variables))
    assert "reduce_window_max" in traced("reduce_window")
    assert "reduce_window_max" not in traced("separable")
    assert "reduce_window_max" in traced("reduce_window")
