import json
import math
import os

import numpy as np
import pytest

from prdarts_jax.runtime.metrics import read_metrics
from prdarts_jax.search.pools import (
    Birth,
    CellPools,
    EdgePool,
    EdgeReport,
    PoolReport,
    initial_pools,
    step_pools,
)
from prdarts_jax.search.statistics import (
    cell_similarity,
    cycle_statistics,
    edge_similarity,
    history_statistics,
    parent_probabilities,
    pool_history,
    pool_report_from_json,
    similarity,
)
from prdarts_jax.space.opspec import INITIAL_POOL, OpSpec
from prdarts_jax.space.spaces import PRESETS

MAXP, AVGP, SKIP, C3 = INITIAL_POOL
conv = OpSpec.conv
QUICK_RUN = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures", "quick_run")
CELL_KEYS = {"ops", "ops_per_edge", "distinct_ops", "op_types", "kernel_sizes", "dilations",
             "depths", "similarity", "parent_probability", "births", "returned",
             "failed_tries"}
SOME_OPS = [MAXP, AVGP, SKIP, C3, conv(5), conv(3, (1,)), conv(3, (1, 1)), conv(3, (2, 1)),
            conv(3, (2,)), conv(3, (1,), dil=2), conv(7, (1,), dil=2), conv(1, (3, 2, 1))]


def test_initial_pool_similarity_is_one_third():
    assert edge_similarity(INITIAL_POOL) == pytest.approx(1 / 3, abs=1e-12)
    assert cell_similarity([INITIAL_POOL] * 14) == pytest.approx(1 / 3, abs=1e-12)


def test_pools_score_type_and_kernel():
    assert similarity(MAXP, AVGP) == pytest.approx(2 / 3)


@pytest.mark.parametrize("op", SOME_OPS)
def test_equal_ops_score_one(op):
    assert similarity(op, op) == 1.0
    assert edge_similarity([op, op]) == 1.0


def test_similarity_is_symmetric_bounded_and_one_only_for_equal_ops():
    for a in SOME_OPS:
        for b in SOME_OPS:
            s = similarity(a, b)
            assert s == similarity(b, a)
            assert 0.0 <= s <= 1.0
            assert (s == 1.0) == (a == b)


def test_different_kinds_score_zero():
    assert similarity(SKIP, C3) == similarity(MAXP, SKIP) == similarity(AVGP, conv(5)) == 0.0


@pytest.mark.parametrize("a, b, expected", [
    # mean of [1, k equal, dil equal, c_mul score]; n = min(len) + 1
    (conv(3, (1,)), conv(3, (1, 1)), (1 + 1 + 1 + 1 / 2) / 4),    # n=2: lengths differ, [0] same
    (conv(3, (2, 1)), conv(3, (2,)), (1 + 1 + 1 + 1 / 2) / 4),    # n=2: [0] same
    (conv(3, (2, 1)), conv(3, (1, 1)), (1 + 1 + 1 + 2 / 3) / 4),  # n=3: lengths, [1] same
    (conv(3, (2,)), conv(3, (1,)), (1 + 1 + 1 + 1 / 2) / 4),      # n=2: lengths only
    (conv(3), conv(3, (1,)), (1 + 1 + 1 + 0) / 4),                # n=1: nothing shared
    (conv(5, (1,)), conv(3, (1,)), (1 + 0 + 1 + 1) / 4),
    (conv(3, dil=2), conv(5), (1 + 0 + 0 + 1) / 4),
])
def test_conv_similarity_by_hand(a, b, expected):
    assert similarity(a, b) == pytest.approx(expected)


def test_edge_similarity_averages_ordered_pairs_with_diagonal():
    ops = [C3, conv(5), SKIP]
    # pairs: 3 diagonal ones, (C3, k5) twice at 3/4, the rest 0
    assert edge_similarity(ops) == pytest.approx((3 + 2 * 0.75) / 9)
    assert cell_similarity([ops, [SKIP]]) == pytest.approx(((3 + 1.5) / 9 + 1) / 2)


def _hand_pools() -> CellPools:
    normal = (EdgePool((MAXP, conv(5, (1,)), C3)), EdgePool((SKIP, conv(7, dil=2))))
    reduce = (EdgePool((AVGP, SKIP)), EdgePool((MAXP, AVGP)))
    return CellPools(normal, reduce)


def test_cycle_statistics_fractions_on_hand_built_pools():
    stats = cycle_statistics(_hand_pools(), None, settings={"epochs": 3, "grace": 1, "keep": 4,
                                                            "morphs": 2})
    assert set(stats) == {"settings", "normal", "reduce"}
    assert stats["settings"] == {"epochs": 3, "grace": 1, "keep": 4, "morphs": 2}
    n = stats["normal"]
    assert set(n) == CELL_KEYS
    assert n["ops"] == 5 and n["ops_per_edge"] == [3, 2] and n["distinct_ops"] == 5
    assert n["op_types"] == pytest.approx({"conv": 3 / 5, "pool": 1 / 5, "skip": 1 / 5})
    assert n["kernel_sizes"] == pytest.approx({"1": 0, "3": 1 / 3, "5": 1 / 3, "7": 1 / 3})
    assert n["dilations"] == pytest.approx({"1": 2 / 3, "2": 1 / 3})
    assert n["depths"] == pytest.approx({"0": 2 / 3, "1": 1 / 3})
    assert n["similarity"] == pytest.approx(
        (edge_similarity(_hand_pools().normal[0].ops) + 0.5) / 2)
    assert n["parent_probability"] is None and n["births"] == 0
    r = stats["reduce"]
    assert r["op_types"] == pytest.approx({"conv": 0.0, "pool": 0.75, "skip": 0.25})
    assert r["kernel_sizes"] == {"1": 0.0, "3": 0.0, "5": 0.0, "7": 0.0}
    assert r["distinct_ops"] == 3
    assert r["similarity"] == pytest.approx((0.5 + (2 + 2 * 2 / 3) / 4) / 2)
    json.dumps(stats)


def test_parent_probability_on_a_hand_built_report():
    a, b, c, d = conv(3), SKIP, conv(5), MAXP
    x, y, z = conv(7), conv(5, (1,)), conv(3, dil=2)
    edge = EdgeReport(ops=(a, b, c, d), alpha=(1.0, 0.0, 2.0, -1.0), dropped=(b, d),
                      survivors=(a, c),
                      added=(Birth(x, c, 0), Birth(y, c, 4), Birth(z, a, 2, returned=True)),
                      failed_tries=5)
    p_c = math.exp(2) / (math.exp(1) + math.exp(2))
    assert parent_probabilities(edge) == pytest.approx([p_c, p_c, 1 - p_c])

    quiet = EdgeReport((MAXP, AVGP), (0.0, 1.0), (MAXP,), (AVGP,), (), 0)
    report = PoolReport(4, 3, False, normal=(edge, quiet), reduce=(quiet, quiet))
    pools = CellPools(normal=(EdgePool((a, c, x, y, z)), EdgePool((AVGP,))),
                      reduce=(EdgePool((AVGP,)),) * 2)
    stats = cycle_statistics(pools, report, settings={})
    assert stats["normal"]["parent_probability"] == pytest.approx((2 * p_c + 1 - p_c) / 3)
    assert (stats["normal"]["births"], stats["normal"]["returned"],
            stats["normal"]["failed_tries"]) == (3, 1, 5)
    assert stats["reduce"]["parent_probability"] is None


def test_pool_report_json_round_trip():
    rng = np.random.default_rng(0)
    pools = initial_pools()
    alphas = {t: [rng.normal(size=len(e)) for e in pools[t]] for t in ("normal", "reduce")}
    _, report = step_pools(pools, alphas, keep=4, morphs=2, final=False, space=PRESETS["DL"],
                           rng=rng)
    assert pool_report_from_json(json.loads(json.dumps(report.to_json()))) == report
    with pytest.raises(ValueError, match="malformed pool report"):
        pool_report_from_json({"keep": 4})


def test_history_statistics_of_the_quick_run():
    records = {r["cycle"]: r for r in read_metrics(os.path.join(QUICK_RUN, "metrics.jsonl"))
               if r["type"] == "cycle"}
    schedule = {c: {"epochs": e} for c, e in enumerate((3, 3, 2, 2), start=1)}
    stats = history_statistics(records, schedule)
    assert sorted(stats) == [1, 2, 3, 4]
    assert stats[1]["normal"]["similarity"] == pytest.approx(1 / 3)
    assert stats[1]["normal"]["parent_probability"] is None
    assert stats[3]["settings"] == {"epochs": 2}
    pools, reports = pool_history(records)
    assert sorted(pools) == [1, 2, 3, 4, 5] and reports[4].final
    assert set(pools[5].op_counts()["normal"]) == {1}
    assert stats[3] == cycle_statistics(pools[3], reports[2], settings={"epochs": 2})
    assert stats[2]["normal"]["births"] == 14 * 2
    assert 0 < stats[2]["normal"]["parent_probability"] <= 1
