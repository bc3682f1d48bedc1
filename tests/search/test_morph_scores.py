"""Performance-weighted morphisms: fates, scores from a history, the weighted draw, and that the
uniform draw (the paper) is exactly what it was."""

import hashlib
import json

import numpy as np
import pytest

from prdarts_jax.search.morph_scores import (
    MorphScores,
    fate,
    kind_probabilities,
    observe,
    parent_class,
    record,
    scores_from,
    selector,
    with_births,
)
from prdarts_jax.search.pools import (
    CELL_TYPES,
    Birth,
    EdgePool,
    EdgeReport,
    PoolReport,
    _draw_kind,
    initial_pools,
    replace_edge,
    step_pools,
)
from prdarts_jax.space.opspec import OpSpec
from prdarts_jax.space.spaces import EDGES_PER_CELL, PRESETS, legal_morphisms

C3, C5, SKIP, MAXP = OpSpec.conv(3), OpSpec.conv(5), OpSpec.skip(), OpSpec.pool("max")
C3M1, C3D2 = OpSpec.conv(3, (1,)), OpSpec.conv(3, dil=2)
C5D2 = OpSpec.conv(5, dil=2)


def test_parent_class_and_fate_are_the_centred_normalised_rank():
    assert [parent_class(o) for o in (C3, C3M1, C3D2, OpSpec.conv(5, (1, 2), 3))] == \
        ["conv", "conv_stack", "dil", "dil_stack"]
    ops, alpha = (MAXP, C3, C5, SKIP), (0.1, 2.0, -1.0, 0.5)   # ranks 2, 0, 3, 1
    assert [fate(ops, alpha, o) for o in ops] == pytest.approx([-1 / 3, 1.0, -1.0, 1 / 3])
    assert fate((C3, C5), (0.0, 0.0), C5) == -1.0   # ties: pool position, as pruning
    assert fate((C3,), (4.0,), C3) == 0.0


def _report(edges: dict) -> PoolReport:
    """A PoolReport whose edges are `edges[(cell, e)] = (ops, alpha, births)`, others trivial."""
    def edge(cell, e):
        ops, alpha, births = edges.get((cell, e), ((SKIP,), (0.0,), ()))
        return EdgeReport(tuple(ops), tuple(alpha), (), tuple(ops), tuple(births), 0)
    return PoolReport(4, 2, False, **{c: tuple(edge(c, e) for e in range(EDGES_PER_CELL))
                                      for c in CELL_TYPES})


def _history() -> list[PoolReport]:
    """Boundary 1 bears four children; boundary 2 holds their pools' α, and bears one more."""
    first = _report({
        ("normal", 0): ((C3, MAXP), (0.0, 0.0), (Birth(C5, C3, 0), Birth(C3M1, C3, 4))),
        ("normal", 5): ((C3, C3D2), (0.0, 0.0), (Birth(C5D2, C3D2, 0),)),
        ("reduce", 3): ((C3, SKIP), (0.0, 0.0), (Birth(C3D2, C3, 2),)),
        ("reduce", 4): ((C3,), (0.0,), (Birth(C5, C3, 0),)),
    })
    second = _report({
        ("normal", 0): ((MAXP, C3, C5, C3M1), (0.0, 1.0, 2.0, -1.0), (Birth(C5D2, C3D2, 0),)),
        ("normal", 5): ((C3, C3D2, C5D2), (0.0, 1.0, 0.5), ()),    # C5D2 rank 1 of 3: 0
        ("reduce", 3): ((SKIP, C3, C3D2), (0.0, 0.0, 0.0), ()),     # C3D2 last on ties: -1
        ("reduce", 4): ((C3, C5), (0.0, 1.0), ()),                  # C5 first: +1
    })
    return [first, second]


def test_scores_from_a_constructed_history():
    scores = scores_from(_history())
    assert scores.totals == {(0, "conv"): (2.0, 2), (4, "conv"): (-1.0, 1),
                             (0, "dil"): (0.0, 1), (2, "conv"): (-1.0, 1)}
    assert scores.score(0, "conv") == 1.0 and scores.score(4, "conv") == -1.0
    assert scores.score(5, "conv") == 0.0                      # no child yet: neutral
    assert scores.pending == (("normal", 0, str(C5D2), str(C3D2), 0),)
    assert scores_from(_history()[:1]).totals == {}            # nothing judged before boundary 2
    # resume: the state round-trips through the checkpoint's JSON exactly, and the fold
    # continued from it equals the fold over the whole history
    saved = MorphScores.from_json(json.loads(json.dumps(scores_from(_history()[:1]).to_json())))
    second = _history()[1]
    continued = with_births(observe(saved, {t: [r.ops for r in second[t]] for t in CELL_TYPES},
                                    {t: [r.alpha for r in second[t]] for t in CELL_TYPES}),
                            second)
    assert continued == scores


def _favouring_kind_0() -> MorphScores:
    return MorphScores({(0, "conv"): (3.0, 3), (4, "conv"): (-2.0, 2)})


def test_probabilities_follow_softmax_of_scores_over_temperature_with_a_floor():
    legal = legal_morphisms(C3, PRESETS["UR"])   # kernel up and down, dil_up, insert_layer
    assert legal == (0, 1, 2, 4)
    p = kind_probabilities(_favouring_kind_0(), C3, legal, temperature=0.5, floor=0.3)
    z = np.array([1.0, 0.0, 0.0, -1.0]) / 0.5
    expected = 0.3 / 4 + 0.7 * np.exp(z) / np.exp(z).sum()
    np.testing.assert_allclose(p, expected)
    assert p.sum() == pytest.approx(1.0) and p.min() >= 0.075
    uniform = kind_probabilities(MorphScores(), C3, legal, temperature=0.1, floor=0.0)
    np.testing.assert_allclose(uniform, [1 / 4] * 4)
    rec = record(_favouring_kind_0(), temperature=0.5, floor=0.3)
    assert rec["probabilities"]["conv"]["kernel_up"] > rec["probabilities"]["dil"]["kernel_up"]
    assert {(r["morphism"], r["parent"], r["children"]) for r in rec["scores"]} == \
        {("kernel_up", "conv", 3), ("insert_layer", "conv", 2)}


def test_weighted_draw_follows_the_computed_probabilities():
    """20000 draws with a fixed seed: frequencies within 0.012 (> 4 standard errors) of the
    probabilities, and the floor keeps the disfavoured kinds drawn."""
    space, scores = PRESETS["UR"], _favouring_kind_0()
    legal = legal_morphisms(C3, space)
    probs = selector(scores, temperature=0.2, floor=0.15)
    p = probs(C3, legal)
    assert p[0] > 0.85 and p.min() == pytest.approx(0.15 / 4, abs=1e-3)
    rng = np.random.default_rng(0)
    draws = [_draw_kind(C3, space, rng, probs) for _ in range(20000)]
    freq = [sum(k == kind for k, _ in draws) / len(draws) for kind in legal]
    np.testing.assert_allclose(freq, p, atol=0.012)
    assert min(freq) > 0.025
    assert {k: pr for k, pr in draws} == {k: pytest.approx(v) for k, v in zip(legal, p)}
    assert _draw_kind(MAXP, space, rng, probs) == (None, None)


def test_weighted_births_record_their_probability_uniform_births_do_not():
    edge = EdgePool((C3, C3M1))
    args = {"space": PRESETS["UR"], "max_tries": 50}
    _, weighted, _ = replace_edge(edge, np.zeros(2), 3, rng=np.random.default_rng(1),
                                  kind_probs=selector(_favouring_kind_0(), temperature=1.0,
                                                      floor=0.1), **args)
    _, uniform, _ = replace_edge(edge, np.zeros(2), 3, rng=np.random.default_rng(1), **args)
    assert weighted and all(0 < b.probability <= 1 for b in weighted)
    assert all("kind_probability" in b.to_json() for b in weighted)
    assert all(b.probability is None and "kind_probability" not in b.to_json()
               for b in uniform)


# sha256 of the nine PoolReports below, computed with the pools.py before this variant existed
_TODAY = {"DL": "3296f7b7918165bdec9acd4cf9ebfcf46df0f08031aba8f957a9ae9a2e72fe85",
          "UR": "72526c45ac74dfa42e8db0c43d6384790fef7ec763a0b4e528633f451e0029d6"}


@pytest.mark.parametrize("name", sorted(_TODAY))
def test_uniform_selection_draws_exactly_as_before(name):
    rng = np.random.default_rng(7)
    pools, out = initial_pools(), []
    for c, (keep, morphs) in enumerate(zip([6, 6, 6, 6, 6, 4, 3, 2, 1], [3] * 5 + [0] * 4)):
        alphas = {t: [rng.normal(0, 1, len(e)) for e in pools[t]] for t in CELL_TYPES}
        pools, report = step_pools(pools, alphas, keep=keep, morphs=morphs, final=c == 8,
                                   space=PRESETS[name], rng=rng)
        out.append(report.to_json())
    digest = hashlib.sha256(json.dumps(out, sort_keys=True).encode()).hexdigest()
    assert digest == _TODAY[name]


def _weighted_config(digits_dir):
    """Three one-epoch cycles with children at both boundaries (the second draws by scores)."""
    from tests.helpers import short_config

    c = short_config(digits_dir, morph_selection="weighted", morph_temperature=0.5)
    c.max_steps_per_epoch = 2
    c.schedule.epochs, c.schedule.grace = (1, 1, 1), (0, 0, 0)
    c.schedule.morphs, c.schedule.keep = (2, 2, 0), (4, 4, 1)
    return c


@pytest.fixture(scope="module")
def weighted_search(tmp_path_factory, digits_dir):
    """(workdir, genotype) of the weighted search run straight through."""
    from prdarts_jax.search.loop import run_search

    workdir = tmp_path_factory.mktemp("weighted")
    return workdir, run_search(_weighted_config(digits_dir), str(workdir))


def test_a_tiny_weighted_search_records_and_saves_its_scores(weighted_search, digits_dir):
    """The tiny search with weighted morphisms: cycle 1's births carry their kinds'
    probabilities, cycle 2's record holds the scores judged from them, and the state in each
    checkpoint (what a resume reads) equals `scores_from` the reports recorded before it."""
    import orbax.checkpoint as ocp

    from prdarts_jax.runtime.checkpoints import Checkpointer, position_id
    from prdarts_jax.runtime.metrics import read_metrics
    from prdarts_jax.search.statistics import pool_report_from_json

    tmp_path, config = weighted_search[0], _weighted_config(digits_dir)
    assert weighted_search[1] is not None
    cycles = [r for r in read_metrics(str(tmp_path / "metrics.jsonl")) if r["type"] == "cycle"]
    assert [r["morph_scores"]["scores"] == [] for r in cycles] == [True, False, False]
    rows = cycles[1]["morph_scores"]["scores"]
    assert sum(r["children"] for r in rows) == sum(
        len(e["added"]) for t in CELL_TYPES for e in cycles[0]["report"][t])
    assert all(-1 <= r["score"] <= 1 for r in rows)
    births = [b for t in CELL_TYPES for e in cycles[0]["report"][t] for b in e["added"]]
    assert births and all(0 < b["kind_probability"] <= 1 for b in births)
    reports = [pool_report_from_json(r["report"]) for r in cycles]
    for c in (1, 2):  # the record of boundary c+1 holds the scores its draws used
        assert record(scores_from(reports[:c + 1]), temperature=0.5,
                      floor=config.morph_floor) == cycles[c]["morph_scores"]
    ckpt = Checkpointer(str(tmp_path))
    saved = {step: ckpt.manager.restore(step, args=ocp.args.Composite(
        meta=ocp.args.JsonRestore()))["meta"] for step in ckpt.steps()}
    ckpt.close()
    start_2, last = position_id(2, 0, 0), max(saved)
    assert all("morph_scores" not in m for step, m in saved.items() if step < start_2)
    assert MorphScores.from_json(saved[start_2]["morph_scores"]) == scores_from(reports[:1])
    assert saved[last]["finished"]
    assert MorphScores.from_json(saved[last]["morph_scores"]) == scores_from(reports)


def test_a_weighted_search_stopped_and_resumed_draws_as_one_run(tmp_path, digits_dir,
                                                                weighted_search):
    """Stopped in cycle 2 (its births await their fate in the checkpoint), the resumed search
    draws boundary 2's morphisms by the same scores and ends exactly as one run straight
    through."""
    from prdarts_jax.errors import SearchInterrupted
    from prdarts_jax.runtime.interrupts import FaultHook
    from prdarts_jax.runtime.metrics import read_metrics
    from prdarts_jax.search.loop import run_search
    from tests.helpers import without_timings

    def records(workdir):
        return [without_timings(r)
                for r in read_metrics(str(workdir / "metrics.jsonl"))]

    straight, genotype = weighted_search
    with pytest.raises(SearchInterrupted):
        run_search(_weighted_config(digits_dir), str(tmp_path),
                   faults=FaultHook(at_position=(2, 0, 1), signal_name="TERM"))
    assert run_search(_weighted_config(digits_dir), str(tmp_path)) == genotype
    assert records(tmp_path) == records(straight)
    cycle_2 = [r for r in records(straight) if r["type"] == "cycle"][1]
    assert cycle_2["morph_scores"]["scores"]
    assert all("kind_probability" in b for t in CELL_TYPES for e in cycle_2["report"][t]
               for b in e["added"])
