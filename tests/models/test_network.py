"""The final network: parameter counts (eval_shape, no compile), drop path, auxiliary head."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prdarts_jax.models.network import (
    AuxiliaryHead,
    Cell,
    Network,
    check_genotype,
    count_params,
    drop_path,
    init_variables_shape,
    param_count,
    param_counts,
    param_table,
)
from prdarts_jax.space.genotypes import PUBLISHED, Genotype, parse_cell
from prdarts_jax.space.opspec import OpSpec

# DARTS' training log for DARTS_V2 on CIFAR-10 prints `param size = 3.349342MB`.
DARTS_V2_CIFAR10 = 3_349_342
# Paper Table 3 (CIFAR-10), in millions, rounded to 0.1M.
PAPER_MILLIONS = {"DL1": 3.2, "DL2": 4.0, "DR": 4.2, "UR": 5.4}


@pytest.fixture(scope="module")
def native_ops():
    """Traces with the native depthwise conv and pools: parameter shapes do not depend on the
    formulation (see `primitives`), and the CPU formulations take twice as long to trace."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PRDARTS_DEPTHWISE_IMPL", "grouped")
        mp.setenv("PRDARTS_POOL_IMPL", "reduce_window")
        yield


@pytest.fixture(scope="module")
def counts(native_ops):
    """Parameter counts of every built-in genotype, C=36, 20 cells, 32x32 inputs."""
    return param_counts()


def test_darts_v2_matches_the_published_count_exactly(counts):
    assert counts["DARTS_V2", 10] == DARTS_V2_CIFAR10


@pytest.mark.parametrize("name", sorted(PAPER_MILLIONS))
def test_pr_darts_cells_match_the_paper(counts, name):
    assert round(counts[name, 10] / 1e6, 1) == PAPER_MILLIONS[name]


def test_cifar100_differs_only_in_the_classifier(counts):
    for name in PUBLISHED:
        # 20-cell net ends in 4 * 4C = 576 channels; 90 more outputs, each 576 weights + a bias
        assert counts[name, 100] - counts[name, 10] == 90 * (16 * 36 + 1)


def test_counts_are_deterministic(counts):
    assert param_count(PUBLISHED["DARTS_V2"], 10) == counts["DARTS_V2", 10]


def test_table_lists_every_genotype(counts):
    table = param_table(counts)
    assert "| DARTS_V2 | 3,349,342 | 3.3 |" in table
    assert all(f"| {name} |" in table for name in PUBLISHED)


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_every_genotype_builds_for_digits_with_aux_head(name):
    net = Network(PUBLISHED[name], 10, c=4, layers=3)
    x = jnp.zeros((2, 8, 8, 1))
    rngs = {"params": jax.random.PRNGKey(0), "drop_path": jax.random.PRNGKey(1)}
    (logits, aux), variables = jax.eval_shape(
        lambda: net.init_with_output(rngs, x, True, 0.2))
    assert logits.shape == (2, 10) and aux.shape == (2, 10)
    assert "aux_head" in variables["params"]
    assert count_params(variables["params"]) < sum(
        np.prod(v.shape) for v in jax.tree.leaves(variables["params"]))
    (logits, aux), _ = jax.eval_shape(lambda: net.init_with_output(rngs, x, False))
    assert aux is None


def test_aux_head_follows_darts_on_cifar_and_shrinks_on_small_maps():
    head = AuxiliaryHead(10)
    for side, kernel in ((8, 2), (2, 1)):
        x = jnp.zeros((3, side, side, 32))
        out, v = jax.eval_shape(lambda: head.init_with_output(jax.random.PRNGKey(0), x, True))
        assert out.shape == (3, 10)
        assert v["params"]["conv_2"].shape == (kernel, kernel, 128, 768)
    # on cell 2L//3's output: 6 cells, C=4 -> cell 4, 4 nodes x 16 channels on an 8x8 map
    v = init_variables_shape(Network(PUBLISHED["DARTS_V2"], 10, c=4, layers=6), (32, 32, 3))
    assert v["params"]["aux_head"]["conv_1"].shape == (1, 1, 64, 128)
    assert v["params"]["aux_head"]["conv_2"].shape == (2, 2, 128, 768)


def test_reduction_concat_of_cell_inputs_is_refused():
    g = PUBLISHED["DL2"]
    bad = Genotype(g.normal, g.reduce, reduce_concat=(0, 2, 3, 4, 5))
    with pytest.raises(ValueError, match="reduce_concat"):
        check_genotype(bad)


def test_drop_path_drops_the_expected_fraction_of_samples():
    p, n = 0.3, 20_000
    y = drop_path(jax.random.PRNGKey(0), jnp.ones((n, 2, 2, 3)), p)
    dropped = np.all(np.asarray(y) == 0, axis=(1, 2, 3))
    # binomial std sqrt(p(1-p)/n) = 0.0032; the tolerance is about 6 std
    assert abs(dropped.mean() - p) < 0.02
    np.testing.assert_allclose(np.asarray(y)[~dropped], 1 / (1 - p), rtol=1e-6)


def _cell(text: str) -> Cell:
    return Cell(parse_cell(text), (2, 3, 4, 5), c=4, reduction=False, reduction_prev=False)


@pytest.fixture(scope="module")
def cell_inputs():
    k0, k1 = jax.random.split(jax.random.PRNGKey(0))
    return jax.random.normal(k0, (400, 4, 4, 6)), jax.random.normal(k1, (400, 4, 4, 6))


def _run(cell, variables, s0, s1, p, train, key=0):
    if not train:
        return cell.apply(variables, s0, s1, p, False)
    y, _ = cell.apply(variables, s0, s1, p, True, rngs={"drop_path": jax.random.PRNGKey(key)},
                      mutable=["batch_stats"])
    return y


def test_stride1_skips_are_never_dropped(cell_inputs):
    s0, s1 = cell_inputs
    cell = _cell("skip@0 skip@1 | skip@1 skip@2 | skip@0 skip@3 | skip@2 skip@4")
    v = cell.init(jax.random.PRNGKey(1), s0, s1, 0.0, False)
    np.testing.assert_array_equal(_run(cell, v, s0, s1, 0.9, True),
                                  _run(cell, v, s0, s1, 0.0, True))


def test_other_ops_are_dropped_per_sample_and_eval_mode_is_untouched(cell_inputs):
    s0, s1 = cell_inputs
    cell = _cell("maxpool3@0 avgpool3@1 | skip@1 skip@2 | skip@0 skip@3 | skip@2 skip@4")
    v = cell.init(jax.random.PRNGKey(1), s0, s1, 0.0, False)
    p = 0.5
    y = np.asarray(_run(cell, v, s0, s1, p, True))
    # node 0 (channels 0..3) is zero exactly when both of its pool outputs were dropped
    node0_zero = np.all(y[..., :4] == 0, axis=(1, 2, 3))
    assert abs(node0_zero.mean() - p * p) < 0.09  # n=400: std 0.022, about 4 std
    assert not np.array_equal(y, _run(cell, v, s0, s1, 0.0, True))
    # eval mode: no drop path whatever p is, and no rng needed
    np.testing.assert_array_equal(_run(cell, v, s0, s1, 0.9, False),
                                  _run(cell, v, s0, s1, 0.0, False))


def test_reduction_skip_is_a_factorized_reduce_and_is_dropped(cell_inputs):
    s0, s1 = cell_inputs
    pairs = parse_cell("skip@0 skip@1 | skip@0 skip@2 | skip@1 skip@3 | skip@2 skip@4")
    cell = Cell(pairs, (2, 3, 4, 5), c=4, reduction=True, reduction_prev=False)
    v = cell.init(jax.random.PRNGKey(1), s0, s1, 0.0, False)
    assert {"conv_1", "conv_2"} <= set(v["params"]["op_0"])
    y = _run(cell, v, s0, s1, 0.5, True)
    assert y.shape == (400, 2, 2, 16)
    assert not np.array_equal(y, _run(cell, v, s0, s1, 0.0, True))
    assert pairs[0][0] == OpSpec.skip()
