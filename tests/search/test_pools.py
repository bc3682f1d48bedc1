import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prdarts_jax.search.pools import (
    CELL_TYPES,
    Birth,
    CellPools,
    EdgePool,
    initial_pools,
    n_survivors,
    prune_edge,
    replace_edge,
    sample_parent,
    softmax,
    step_pools,
    validate_schedule,
)
from prdarts_jax.space.opspec import INITIAL_POOL, OpSpec
from prdarts_jax.space.spaces import (
    EDGES_PER_CELL,
    PRESETS,
    SearchSpace,
    apply_change,
    legal_morphisms,
    reachable_convs,
)

EPOCHS = [15, 15, 10, 10, 10, 10, 10, 10, 10]
GRACE = [5, 5, 3, 3, 3, 3, 3, 3, 3]
MORPHS = [3, 3, 3, 3, 3, 0, 0, 0, 0]
KEEP = [6, 6, 6, 6, 6, 4, 3, 2, 1]
MAXP, AVGP, SKIP, C3 = INITIAL_POOL
DL_OPS = (MAXP, AVGP, SKIP) + tuple(sorted(reachable_convs(PRESETS["DL"])))
TINY = SearchSpace("tiny", 3, 5, 1, 0, 0, None)  # only conv k3 <-> conv k5


def _conv_favoured_alphas(pools: CellPools, rng: np.random.Generator) -> dict:
    """Random α that favour convs, as a trained supernet's α tend to."""
    return {c: [rng.normal(0.0, 0.5, len(e)) + np.where([o.is_conv for o in e.ops], 1.0, -1.0)
                for e in pools[c]] for c in CELL_TYPES}


def _run_schedule(space, seed: int, alphas=_conv_favoured_alphas):
    rng = np.random.default_rng(seed)
    pools, steps = initial_pools(), []
    for cycle, (keep, morphs) in enumerate(zip(KEEP, MORPHS)):
        new, report = step_pools(pools, alphas(pools, rng), keep=keep, morphs=morphs,
                                 final=cycle == len(KEEP) - 1, space=space, rng=rng)
        steps.append((pools, new, report))
        pools = new
    return steps


@st.composite
def edges_with_alpha(draw):
    ops = draw(st.lists(st.sampled_from(DL_OPS), min_size=1, max_size=8, unique=True))
    alpha = draw(st.lists(st.sampled_from([-1.0, 0.0, 0.5, 2.0]), min_size=len(ops),
                          max_size=len(ops)))
    return EdgePool(tuple(ops)), np.array(alpha)


@settings(max_examples=100, deadline=None)
@given(edges_with_alpha(), st.integers(1, 9), st.booleans())
def test_prune_keeps_top_alpha_in_original_order(edge_alpha, n_keep, protect):
    edge, alpha = edge_alpha
    pruned, kept_alpha, dropped = prune_edge(edge, alpha, n_keep, keep_best_conv=protect)
    ranked = sorted(range(len(edge)), key=lambda i: (-alpha[i], i))
    expected = ranked[:n_keep]
    convs = [i for i in ranked if edge.ops[i].is_conv]
    if protect and convs and not any(edge.ops[i].is_conv for i in expected):
        expected = expected[:-1] + [convs[0]]
    assert pruned.ops == tuple(edge.ops[i] for i in sorted(expected))
    np.testing.assert_array_equal(kept_alpha, alpha[sorted(expected)])
    assert set(dropped) | set(pruned.ops) == set(edge.ops)
    assert not set(dropped) & set(pruned.ops)
    assert pruned.history == edge.history
    if protect and convs:
        assert any(o.is_conv for o in pruned.ops)


def test_best_conv_survives_lowest_alpha_unless_final():
    c5 = OpSpec.conv(5)
    edge = EdgePool((MAXP, AVGP, SKIP, C3, c5))
    alpha = np.array([3.0, 2.0, 1.0, -2.0, -1.0])
    pruned, kept_alpha, dropped = prune_edge(edge, alpha, 3, keep_best_conv=True)
    assert pruned.ops == (MAXP, AVGP, c5)
    np.testing.assert_array_equal(kept_alpha, [3.0, 2.0, -1.0])
    assert dropped == (SKIP, C3)

    pools = CellPools((edge,) * 2, (edge,) * 2)
    alphas = {c: [alpha] * 2 for c in CELL_TYPES}
    final, _ = step_pools(pools, alphas, keep=1, morphs=0, final=True, space=PRESETS["DL"],
                          rng=np.random.default_rng(0))
    assert all(e.ops == (MAXP,) for c in CELL_TYPES for e in final[c])
    not_final, _ = step_pools(pools, alphas, keep=1, morphs=0, final=False,
                              space=PRESETS["DL"], rng=np.random.default_rng(0))
    assert all(e.ops == (c5,) for c in CELL_TYPES for e in not_final[c])


@pytest.mark.parametrize("name", ["DR", "UR"])
def test_op_counts_follow_the_paper_schedule(name):
    counts = [new.op_counts() for _, new, _ in _run_schedule(PRESETS[name], seed=0)]
    for cycle, keep in enumerate(KEEP):
        assert counts[cycle] == {c: (keep,) * EDGES_PER_CELL for c in CELL_TYPES}, cycle


def test_dl_counts_fall_short_only_when_tries_run_out():
    """DL has 12 convs: by cycle 4 the never-seen rule exhausts them and edges may come up short."""
    steps = _run_schedule(PRESETS["DL"], seed=0)
    for old, new, report in steps:
        for c in CELL_TYPES:
            for before, after, r in zip(old[c], new[c], report[c]):
                assert len(r.survivors) == n_survivors(len(before), report.keep, report.morphs)
                assert len(after) == len(r.survivors) + len(r.added) <= report.keep
                if len(r.added) < report.morphs:
                    assert r.failed_tries + len(r.added) == 250
    counts = [new.op_counts() for _, new, _ in steps]
    for cycle in (0, 1, 5, 6, 7, 8):
        assert counts[cycle] == {c: (KEEP[cycle],) * EDGES_PER_CELL for c in CELL_TYPES}


@pytest.mark.parametrize("name", ["DL", "DR"])
@pytest.mark.parametrize("seed", [1, 2])
def test_children_are_new_legal_morphs_of_survivors(name, seed):
    space = PRESETS[name]
    seen = [[set(INITIAL_POOL) for _ in range(EDGES_PER_CELL)] for _ in CELL_TYPES]
    for old, new, report in _run_schedule(space, seed, alphas=lambda p, rng: {
            c: [rng.normal(size=len(e)) for e in p[c]] for c in CELL_TYPES}):
        for ci, c in enumerate(CELL_TYPES):
            for e, (after, r) in enumerate(zip(new[c], report[c])):
                assert old[c][e].history == seen[ci][e]
                pool = set(r.survivors)
                for b in r.added:
                    assert b.parent in r.survivors
                    assert b.kind in legal_morphisms(b.parent, space)
                    assert apply_change(b.kind, b.parent) == b.child
                    assert b.child not in pool
                    assert b.returned == (b.child in seen[ci][e])
                    if b.returned:
                        assert r.failed_tries >= 200
                    pool.add(b.child)
                assert after.ops == r.survivors + tuple(b.child for b in r.added)
                seen[ci][e] |= pool
                assert after.history == seen[ci][e]


def test_revisit_fallback_returns_a_dropped_op():
    c5 = OpSpec.conv(5)
    edge = EdgePool((C3,), frozenset({c5}))
    new, added, failed = replace_edge(edge, np.zeros(1), 1, space=TINY,
                                      rng=np.random.default_rng(0))
    assert added == (Birth(c5, C3, 0, returned=True),)
    assert failed == 200 and new.ops == (C3, c5)
    _, added, failed = replace_edge(edge, np.zeros(1), 1, space=TINY,
                                    rng=np.random.default_rng(0), revisit_after=7)
    assert failed == 7 and added[0].returned


@pytest.mark.parametrize("ops", [(MAXP, SKIP), (C3, OpSpec.conv(5))])
def test_impossible_replacement_leaves_the_edge_short(ops):
    edge = EdgePool(ops)
    new, added, failed = replace_edge(edge, np.zeros(2), 3, space=TINY,
                                      rng=np.random.default_rng(0))
    assert new == edge and added == () and failed == 250
    _, _, failed = replace_edge(edge, np.zeros(2), 3, space=TINY,
                                rng=np.random.default_rng(0), max_tries=40)
    assert failed == 40


def test_short_edge_keeps_all_and_still_gets_morphs():
    edge = EdgePool((SKIP, C3))
    pools = CellPools((edge,), (edge,))
    alphas = {c: [np.zeros(2)] for c in CELL_TYPES}
    new, report = step_pools(pools, alphas, keep=6, morphs=3, final=False,
                             space=PRESETS["DL"], rng=np.random.default_rng(0))
    assert new.op_counts() == {"normal": (5,), "reduce": (5,)}
    assert report["normal"][0].dropped == ()
    with pytest.raises(ValueError, match="morphs"):
        step_pools(pools, alphas, keep=3, morphs=3, final=False, space=PRESETS["DL"],
                   rng=np.random.default_rng(0))


def test_parent_sampling_follows_softmax_over_survivors():
    survivors = (MAXP, C3, OpSpec.conv(5))
    alpha = np.log([0.5, 0.3, 0.2]) + 4.0
    rng = np.random.default_rng(0)
    draws = [sample_parent(survivors, alpha, rng) for _ in range(20000)]
    freq = [draws.count(o) / len(draws) for o in survivors]
    np.testing.assert_allclose(freq, [0.5, 0.3, 0.2], atol=0.015)
    full = softmax(np.array([1.0, 2.0, 0.5, -1.0]))
    np.testing.assert_allclose(softmax(np.array([2.0, -1.0])), full[[1, 3]] / full[[1, 3]].sum())


def test_morph_kind_draw_matches_morphisms_sample_morph():
    from prdarts_jax.models.morphisms import sample_morph
    from prdarts_jax.search.pools import _sample_kind
    for op in (C3, MAXP, OpSpec.conv(7, (1,), 2), OpSpec.conv(3, (2, 1))):
        a, b = np.random.default_rng(3), np.random.default_rng(3)
        space = PRESETS["UR"]
        assert [_sample_kind(op, space, a) for _ in range(20)] == \
            [sample_morph(op, space, b) for _ in range(20)]


def test_fixed_seed_reproduces_and_edges_evolve_independently():
    def run(seed):
        pools, rng = initial_pools(), np.random.default_rng(seed)
        same_alpha = {c: [np.array([0.0, 0.0, 0.0, 1.0])] * EDGES_PER_CELL for c in CELL_TYPES}
        return step_pools(pools, same_alpha, keep=6, morphs=3, final=False,
                          space=PRESETS["DR"], rng=rng)

    assert run(5) == run(5)
    assert run(5) != run(6)
    pools, _ = run(5)
    for c in CELL_TYPES:
        assert len({e.ops for e in pools[c]}) > 1


def test_json_round_trip():
    steps = _run_schedule(PRESETS["DR"], seed=3)
    for _, pools, report in steps[:3]:
        assert CellPools.from_json(json.loads(json.dumps(pools.to_json()))) == pools
        text = json.dumps(report.to_json())
        assert json.loads(text)["normal"][0]["survivors"]
    d = initial_pools().to_json()
    assert d["normal"][0]["history"] == sorted(d["normal"][0]["history"])


def test_edge_pool_validation():
    with pytest.raises(ValueError, match="at least one"):
        EdgePool(())
    with pytest.raises(ValueError, match="duplicate"):
        EdgePool((C3, C3))
    with pytest.raises(ValueError, match="alpha has 2 entries"):
        prune_edge(EdgePool((C3,)), np.zeros(2), 1, True)
    with pytest.raises(KeyError):
        initial_pools()["other"]


def test_validate_schedule_accepts_the_paper_schedule():
    validate_schedule(EPOCHS, GRACE, MORPHS, KEEP)


@pytest.mark.parametrize("field, index, value, key", [
    ("keep", 8, 2, r"config\.schedule\.keep\[8\]"),
    ("keep", 3, 0, r"config\.schedule\.keep\[3\]"),
    ("morphs", 0, 6, r"config\.schedule\.morphs\[0\]"),
    ("morphs", 5, -1, r"config\.schedule\.morphs\[5\]"),
    ("grace", 2, 10, r"config\.schedule\.grace\[2\]"),
    ("epochs", 4, 0, r"config\.schedule\.epochs\[4\]"),
])
def test_validate_schedule_names_the_offending_key(field, index, value, key):
    sched = {"epochs": list(EPOCHS), "grace": list(GRACE), "morphs": list(MORPHS),
             "keep": list(KEEP)}
    sched[field][index] = value
    with pytest.raises(ValueError, match=key):
        validate_schedule(**sched)


def test_validate_schedule_rejects_unequal_lengths():
    with pytest.raises(ValueError, match="one entry per cycle"):
        validate_schedule(EPOCHS, GRACE[:-1], MORPHS, KEEP)
    with pytest.raises(ValueError, match="at least one cycle"):
        validate_schedule([], [], [], [])
