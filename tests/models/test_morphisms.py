import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prdarts_jax.models.morphisms import morph, sample_morph
from prdarts_jax.models.ops import apply_op, init_op, make_op
from prdarts_jax.space.opspec import OpSpec
from prdarts_jax.space.spaces import PRESETS, apply_change, legal_morphisms, reachable_convs
from tests.helpers.strategies import conv_ops

C = 4
X = jax.random.normal(jax.random.PRNGKey(1), (2, 8, 8, C))


def _shapes_of_init(op: OpSpec, stride: int, affine: bool):
    x = jax.ShapeDtypeStruct((1, 8, 8, C), jnp.float32)
    module = make_op(op, C, stride, affine)
    return jax.eval_shape(lambda: module.init(jax.random.PRNGKey(0), jnp.zeros(x.shape), False))


def _shapes(tree):
    return jax.tree.map(lambda a: jax.ShapeDtypeStruct(jnp.shape(a), jnp.result_type(a)), tree)


def _randomise_stats(variables, key):
    """Non-trivial running statistics, so that inference-mode checks mean something."""
    leaves, tree = jax.tree.flatten(variables["batch_stats"])
    keys = jax.random.split(key, len(leaves))
    leaves = [jax.random.uniform(k, a.shape, minval=0.5, maxval=1.5) for k, a in zip(keys, leaves)]
    return {**variables, "batch_stats": jax.tree.unflatten(tree, leaves)}


def _morph_sample():
    dl = sorted(reachable_convs(PRESETS["DL"]))
    dr = sorted(reachable_convs(PRESETS["DR"]))
    ur = sorted(reachable_convs(PRESETS["UR"], 4))[::5]
    cases = []
    for name, ops in (("DL", dl), ("DR", dr), ("UR", ur)):
        for op in ops:
            cases += [(name, op, kind) for kind in legal_morphisms(op, PRESETS[name])]
    return cases


def test_every_legal_morph_gives_the_child_init_structure():
    cases = _morph_sample()
    assert len(cases) > 150
    for space, op, kind in cases:
        for stride, affine in ((1, False), (2, True)):
            child_vars = jax.eval_shape(lambda: morph(
                kind, op, init_op(op, jax.random.PRNGKey(0), C, stride=stride, affine=affine),
                jax.random.PRNGKey(2))[1])
            child = apply_change(kind, op)
            assert PRESETS[space].allows(child)
            assert _shapes(child_vars) == _shapes(dict(_shapes_of_init(child, stride, affine))), (
                space, op, kind)


@pytest.mark.parametrize("train", [False, True])
@pytest.mark.parametrize("op", [OpSpec.conv(3), OpSpec.conv(3, (1,), 2), OpSpec.conv(5, (2, 1))],
                         ids=str)
def test_kernel_growth_is_exact(op, train):
    v = _randomise_stats(init_op(op, jax.random.PRNGKey(3), C), jax.random.PRNGKey(4))
    child, cv = morph(0, op, v)
    assert child.k == op.k + 2
    y, _ = apply_op(op, v, X, train=train)
    yc, _ = apply_op(child, cv, X, train=train)
    chex.assert_trees_all_close(y, yc, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("train", [False, True])
@pytest.mark.parametrize("op", [OpSpec.conv(3, (1,)), OpSpec.conv(3, (2, 1)),
                                OpSpec.conv(5, (1, 1), 2)], ids=str)
def test_widening_is_exact(op, train):
    v = _randomise_stats(init_op(op, jax.random.PRNGKey(5), C, affine=True), jax.random.PRNGKey(6))
    child, cv = morph(5, op, v, jax.random.PRNGKey(7))
    assert sum(child.c_mul) == sum(op.c_mul) + 1
    y, _ = apply_op(op, v, X, affine=True, train=train)
    yc, _ = apply_op(child, cv, X, affine=True, train=train)
    chex.assert_trees_all_close(y, yc, atol=1e-5, rtol=1e-5)
    i = op.c_mul.index(min(op.c_mul))
    new_rows = cv["params"][f"layer_{i + 1}"]["pointwise"][C * op.c_mul[i]:]
    assert new_rows.shape[0] == C and not np.any(np.asarray(new_rows))


@pytest.mark.parametrize("op", [OpSpec.conv(3), OpSpec.conv(5, (1,), 2)], ids=str)
def test_insertion_is_exact_for_non_negative_input_in_inference(op):
    v = init_op(op, jax.random.PRNGKey(8), C, affine=True)
    last = f"layer_{len(op.c_mul)}"
    v["params"][last]["bn"]["bias"] = jnp.full((C,), 50.0)  # makes the op's output positive
    child, cv = morph(4, op, v)
    y, _ = apply_op(op, v, X, affine=True)
    assert bool(jnp.all(y > 0))
    yc, _ = apply_op(child, cv, X, affine=True)
    chex.assert_trees_all_close(y / np.sqrt(1 + 1e-5), yc, atol=1e-4, rtol=1e-5)


def test_insertion_applies_relu_otherwise():
    op = OpSpec.conv(3)
    v = init_op(op, jax.random.PRNGKey(8), C)
    child, cv = morph(4, op, v)
    y, _ = apply_op(op, v, X)
    yc, _ = apply_op(child, cv, X)
    chex.assert_trees_all_close(jnp.maximum(y, 0) / np.sqrt(1 + 1e-5), yc, atol=1e-5)


def _calibrated(op: OpSpec, x: jax.Array, stride: int, seed: int) -> dict:
    """Fresh variables whose running statistics have converged on `x` (as after training)."""
    v = init_op(op, jax.random.PRNGKey(seed), C, stride=stride)
    for _ in range(40):
        _, stats = apply_op(op, v, x, stride=stride, train=True)
        v = {**v, "batch_stats": stats}
    return v


INSERT_BOUND = {False: 0.78, True: 0.65}
"""Relative L2 output change of insert-layer on random inputs (inference, training mode);
measured 0.71-0.74 and 0.55-0.59 (models/morphisms.py)."""


@pytest.mark.parametrize("op", [OpSpec.conv(3), OpSpec.conv(5, (1,), 2)], ids=str)
def test_insertion_on_random_inputs_stays_within_its_stated_change(op):
    x = jax.random.normal(jax.random.PRNGKey(11), (16, 8, 8, C))
    v = _calibrated(op, x, stride=2, seed=3)
    child, cv = morph(4, op, v)
    for train in (False, True):
        y, _ = apply_op(op, v, x, stride=2, train=train)
        yc, _ = apply_op(child, cv, x, stride=2, train=train)
        change = float(jnp.linalg.norm(yc - y) / jnp.linalg.norm(y))
        assert change < INSERT_BOUND[train], (train, change)
        if not train:  # exactly the parent's non-negative part
            chex.assert_trees_all_close(yc, jnp.maximum(y, 0) / np.sqrt(1 + 1e-5), atol=1e-5)


def test_kernel_shrink_crops_and_dilation_copies():
    op = OpSpec.conv(5, (1,))
    v = init_op(op, jax.random.PRNGKey(9), C)
    child, cv = morph(1, op, v)
    assert child == OpSpec.conv(3, (1,))
    np.testing.assert_array_equal(cv["params"]["layer_1"]["depthwise"],
                                  v["params"]["layer_1"]["depthwise"][1:-1, 1:-1])
    child, cv = morph(2, op, v)
    assert child == OpSpec.conv(5, (1,), 2)
    chex.assert_trees_all_equal(cv, v)


def test_morph_does_not_mutate_parent():
    op = OpSpec.conv(3, (1,))
    v = init_op(op, jax.random.PRNGKey(10), C)
    before = jax.tree.map(np.array, v)
    for kind in (0, 4, 5):
        morph(kind, op, v, jax.random.PRNGKey(kind))
    chex.assert_trees_all_equal(jax.tree.map(np.array, v), before)


def test_pools_refuse_and_widen_needs_rng():
    with pytest.raises(ValueError, match="only conv"):
        morph(0, OpSpec.pool("max"), {})
    op = OpSpec.conv(3, (1,))
    with pytest.raises(ValueError, match="rng"):
        morph(5, op, init_op(op, jax.random.PRNGKey(0), C))


@settings(max_examples=10, deadline=None)
@given(conv_ops(max_len=2), st.integers(0, 2**31 - 1))
def test_growth_preserves_function_on_random_ops(op, seed):
    if op.k + 2 > 9:
        return
    v = init_op(op, jax.random.PRNGKey(seed), C)
    y, _ = apply_op(op, v, X, train=True)
    yc, _ = apply_op(*morph(0, op, v), X, train=True)
    chex.assert_trees_all_close(y, yc, atol=1e-4, rtol=1e-4)


def test_sample_morph_uniform_over_legal_and_reproducible():
    op, dl = OpSpec.conv(3), PRESETS["DL"]
    draws = [sample_morph(op, dl, np.random.default_rng(s)) for s in range(300)]
    assert set(draws) == set(legal_morphisms(op, dl))
    counts = np.bincount(draws, minlength=6)[list(legal_morphisms(op, dl))]
    assert counts.min() > 60
    a = [sample_morph(op, dl, g) for g in [np.random.default_rng(1)] * 20]
    b = [sample_morph(op, dl, g) for g in [np.random.default_rng(1)] * 20]
    assert a == b
    assert sample_morph(OpSpec.skip(), dl, np.random.default_rng(0)) is None
