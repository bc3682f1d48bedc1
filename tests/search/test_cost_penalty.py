"""The expected-cost penalty of the α loss (config.cost_penalty, config.cost_measure)."""

import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prdarts_jax.data import DataSpec
from prdarts_jax.models.supernet import Supernet, edge_inputs, init_alphas
from prdarts_jax.search import bilevel
from prdarts_jax.search.config import ConfigError, base_config, validate
from prdarts_jax.search.cost_penalty import REFERENCE_OP, CostPenalty, cost_table, penalty_of
from prdarts_jax.search.loop import run_search
from prdarts_jax.search.structure import programs_for
from prdarts_jax.space.opspec import OpSpec
from prdarts_jax.space.spaces import EDGES_PER_CELL
from tests.helpers import tiny_config

SKIP, SEP5 = OpSpec.skip(), OpSpec.conv(5, (1,))
DATA = DataSpec(mean=(0.5,), std=(0.25,), pad=1)


def _net(pool=(SKIP, SEP5)):
    edges = (tuple(pool),) * EDGES_PER_CELL
    return Supernet(edges, edges, 10, c=4, layers=3)


def test_table_is_in_units_of_a_3x3_separable_conv_everywhere():
    ref = cost_table(_net((REFERENCE_OP,)), (8, 8, 1), "madds")
    assert sum(c[0] for t in ("normal", "reduce") for c in ref[t]) == pytest.approx(1.0)
    for measure in ("madds", "params"):
        table = cost_table(_net(), (8, 8, 1), measure)
        for t, skip_free in (("normal", True), ("reduce", False)):
            for e, (skip, sep5) in enumerate(table[t]):
                assert sep5 > skip >= 0
                # a stride-1 skip is free; a reduction's skips from its inputs are 1×1 convs
                assert (skip == 0) == (skip_free or edge_inputs()[e][1] >= 2)


def test_zero_penalty_builds_todays_programs():
    config = base_config()
    assert penalty_of(config, _net(), (8, 8, 1)) is None
    config.cost_penalty = 0.5
    penalty = penalty_of(config, _net(), (8, 8, 1))
    assert penalty.lam == 0.5 and penalty == penalty_of(config, _net(), (8, 8, 1))
    h = bilevel.Hyper()
    assert programs_for(_net(), DATA, h, True) is programs_for(_net(), DATA, h, True,
                                                               penalty=None)
    assert programs_for(_net(), DATA, h, True, penalty=penalty) is not programs_for(
        _net(), DATA, h, True)


def test_bad_cost_settings_are_one_line_errors():
    for key, value, match in (("cost_measure", "flops", "cost_measure='flops' is unknown"),
                              ("cost_penalty", -1.0, "cost_penalty=-1.0 must be >= 0")):
        config = base_config()
        config[key] = value
        with pytest.raises(ConfigError, match=match) as err:
            validate(config)
        assert "\n" not in str(err.value)


class _Toy(nn.Module):
    """A stand-in for the supernet with its call signature: logits scaled by a function of α,
    a batch statistic that counts training calls. It compiles in a moment."""

    @nn.compact
    def __call__(self, x, alphas, train, sample=None):
        calls = self.variable("batch_stats", "calls", jnp.zeros, ())
        if train and not self.is_initializing():
            calls.value = calls.value + 1
        mix = sum(jnp.sum(jax.nn.softmax(a) * jnp.arange(a.size)) for t in ("normal", "reduce")
                  for a in alphas[t])
        return nn.Dense(10)(x.reshape(x.shape[0], -1)) * mix


def test_penalty_moves_alpha_to_the_cheaper_op_and_leaves_the_weights_alone():
    """One fused gradient program with and without the penalty: the weight gradient is the
    same bit for bit, the α gradient differs by λ·∇E[cost]; from a zero data gradient one α
    step raises the skip's weight (the cheaper op) on every edge."""
    net, lam = _net(), 0.3
    table = cost_table(net, (8, 8, 1), "madds")
    penalty = CostPenalty(lam, table["normal"], table["reduce"])
    alphas = init_alphas(jax.random.PRNGKey(0), net.normal, net.reduce, scale=1.0)
    v = _Toy().init(jax.random.PRNGKey(1), jnp.zeros((2, 8, 8, 1)), alphas, False)
    images = jax.random.randint(jax.random.PRNGKey(2), (8, 8, 8, 1), 0, 255).astype(jnp.uint8)
    args = (v["params"], alphas, v["batch_stats"], images, jnp.arange(8) % 10,
            jnp.arange(8), jax.random.PRNGKey(3))
    h = bilevel.Hyper()
    (gw0, ga0), bs0, m0 = bilevel.make_programs(_Toy(), DATA, h, True).alpha_grads(*args)
    (gw1, ga1), bs1, m1 = bilevel.make_programs(_Toy(), DATA, h, True, penalty=penalty
                                                ).alpha_grads(*args)
    for a, b in ((gw0, gw1), (bs0, bs1), (m0["loss"], m1["loss"])):
        jax.tree.map(np.testing.assert_array_equal, a, b)
    g_cost = jax.grad(penalty.expected_cost)(alphas)
    assert float(jnp.abs(jnp.concatenate(g_cost["normal"])).max()) > 0
    jax.tree.map(lambda a, b, c: np.testing.assert_allclose(a - b, lam * c, atol=1e-6),
                 ga1, ga0, g_cost)
    assert "cost" not in m0 and float(m1["cost"]) == pytest.approx(
        float(penalty.expected_cost(alphas)))
    zero = jax.tree.map(jnp.zeros_like, alphas)
    (_, g), _ = bilevel.with_penalty(penalty, alphas, (None, zero), {})
    after, _ = bilevel.alpha_tx(h).update(g, bilevel.alpha_tx(h).init(alphas), alphas)
    for t in ("normal", "reduce"):
        for a, u in zip(alphas[t], after[t]):
            assert jax.nn.softmax(a + u)[0] > jax.nn.softmax(a)[0]


def test_a_penalised_search_records_alpha_cost(tmp_path, digits_dir):
    """Only the searching epochs carry `alpha_cost` (the grace epochs take no α step)."""
    config = tiny_config(digits_dir, max_steps_per_epoch=2, cost_penalty=0.5,
                         cost_measure="params")
    config.schedule.epochs, config.schedule.grace = (2, 1), (1, 0)
    config.schedule.morphs, config.schedule.keep = (2, 0), (4, 1)
    assert run_search(config, str(tmp_path)) is not None
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in records if r["type"] == "epoch"]
    assert [("alpha_cost" in r) for r in epochs] == [False, True, True]
    assert all(r["alpha_cost"] > 0 for r in epochs[1:])
