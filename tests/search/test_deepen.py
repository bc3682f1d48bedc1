"""Progressive deepening (search/deepen.py, `config.schedule.cells`): the cell map between
depths, the carry of surviving cells' variables bit for bit, and a tiny search that grows from 3
to 4 cells and resumes exactly on both sides of the depth change."""

from __future__ import annotations

import json
import logging

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prdarts_jax.errors import SearchInterrupted
from prdarts_jax.models.backbone import reduction_indices
from prdarts_jax.models.supernet import Supernet, init_alphas
from prdarts_jax.runtime.interrupts import FaultHook
from prdarts_jax.search.config import ConfigError, validate
from prdarts_jax.search.deepen import carry_into_depth, cell_map, cells_in_cycle, deepen_variables
from prdarts_jax.search.loop import run_search
from prdarts_jax.search.pools import initial_pools
from prdarts_jax.search.structure import build_supernet, init_variables
from prdarts_jax.space.spaces import CELL_TYPES
from tests.helpers import final_state, tiny_config, without_timings

C, IMAGE = 4, (8, 8, 1)


def test_cell_map_keeps_stage_positions_and_cell_types():
    assert cell_map(3, 4) == {0: 0, 1: 1, 2: 2}
    assert cell_map(3, 5) == {0: 0, 1: 1, 3: 2}
    assert cell_map(5, 11) == {0: 0, 3: 1, 4: 2, 7: 3, 8: 4}
    for old in range(3, 21):
        for new in range(old, 21):
            m = cell_map(old, new)
            assert len(m) == old and sorted(m.values()) == list(range(old))
            assert [m[i] for i in sorted(m)] == list(range(old))  # order kept
            assert all((i in reduction_indices(new)) == (j in reduction_indices(old))
                       for i, j in m.items())
    with pytest.raises(ValueError, match="shrink"):
        cell_map(5, 4)


def _net(layers: int) -> Supernet:
    edges = {t: tuple(e.ops for e in initial_pools()[t]) for t in CELL_TYPES}
    return Supernet(edges["normal"], edges["reduce"], 10, c=C, layers=layers)


def _init(layers: int, seed: int) -> tuple[Supernet, dict, dict]:
    net = _net(layers)
    alphas = init_alphas(jax.random.PRNGKey(0), net.normal, net.reduce)
    return net, alphas, init_variables(net, jax.random.PRNGKey(seed), IMAGE, alphas)


def _same_arrays(a, b) -> None:
    chex.assert_trees_all_equal(jax.device_get(a), jax.device_get(b))


def test_deepening_carries_surviving_cells_bit_for_bit():
    """3 → 5 cells: cells 0, 1 stay, the second reduction moves 2 → 3 (its pre0 changes from
    FactorizedReduce to ReLUConvBN, so only that is fresh), cells 2 and 4 are new."""
    _, _, old = _init(3, seed=1)
    net, alphas, fresh = _init(5, seed=2)
    out, report = deepen_variables(old, fresh, 3, 5)
    assert dict(report.carried) == {0: 0, 1: 1, 3: 2} and report.new == (2, 4)
    assert report.fresh == ("cell_3/pre0",)
    assert "deepening 3 -> 5 cells" in report.line() and "2->3" in report.line()
    for coll in ("params", "batch_stats"):
        for top in ("stem", "classifier"):
            if top in old[coll]:
                _same_arrays(out[coll][top], old[coll][top])
        for i, j in report.carried.items():
            for name, sub in out[coll][f"cell_{i}"].items():
                src = fresh if (i, name) == (3, "pre0") else old
                _same_arrays(sub, src[coll][f"cell_{j if src is old else i}"][name])
        for i in report.new:
            _same_arrays(out[coll][f"cell_{i}"], fresh[coll][f"cell_{i}"])
    assert set(old["params"]["cell_2"]["pre0"]) != set(out["params"]["cell_3"]["pre0"])
    assert jax.tree.map(jnp.shape, out) == jax.tree.map(jnp.shape, fresh)
    logits = net.apply(out, jnp.ones((2, *IMAGE)), alphas, False)
    assert logits.shape == (2, 10) and bool(jnp.all(jnp.isfinite(logits)))


def test_same_depth_changes_nothing_and_empty_schedule_is_layers():
    variables = {"params": {"x": np.zeros(2)}}
    assert carry_into_depth(variables, 4, 4, lambda: pytest.fail("initialised")) is variables
    config = tiny_config("unused")
    assert config.schedule.cells == ()
    pools = initial_pools()
    assert all(cells_in_cycle(config, c) == config.layers for c in range(1, 6))
    assert all(build_supernet(pools, config, 10, cycle=c) == build_supernet(pools, config, 10)
               for c in (1, 3, 5))
    config.schedule.cells = (3, 3, 5, 8)
    assert [cells_in_cycle(config, c) for c in (1, 2, 3, 4, 5)] == [3, 3, 5, 8, 8]


@pytest.mark.parametrize("cells, msg", [((3, 5, 4, 8), "only grow or stay"),
                                        ((3, 4), "entries for 4 cycles"),
                                        ((2, 3, 4, 5), "whole number >= 3 of cells")])
def test_bad_cell_schedules_are_refused(cells, msg):
    config = tiny_config("unused")
    config.schedule.cells = cells
    with pytest.raises(ConfigError, match=msg):
        validate(config)


def _deepening_config(data_dir):
    config = tiny_config(data_dir, max_steps_per_epoch=2)
    config.schedule.epochs, config.schedule.grace = (1, 1), (0, 0)
    config.schedule.morphs, config.schedule.keep = (1, 0), (2, 1)
    config.schedule.cells = (3, 4)
    return config


def _metrics(workdir):
    return [without_timings(json.loads(line))
            for line in (workdir / "metrics.jsonl").read_text().splitlines()]


def test_tiny_deepening_search_runs_and_resumes_exactly(tmp_path, digits_dir, caplog):
    """3 cells in cycle 1, 4 in cycle 2; stopped in cycle 1 (the resume crosses the depth
    change) and again in cycle 2 (the restore target has 4 cells), it ends as one run."""
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    with caplog.at_level(logging.INFO, logger="prdarts_jax"):
        genotype = run_search(_deepening_config(digits_dir), str(straight))
    assert genotype is not None
    assert "deepening 3 -> 4 cells: carried cells [0, 1, 2] (moved none), new cells [3]" \
        in caplog.text
    state, meta = final_state(straight, _deepening_config(digits_dir))
    assert meta["finished"]
    assert sorted(k for k in state["params"] if k.startswith("cell_")) == \
        [f"cell_{i}" for i in range(4)]
    for at in ((1, 0, 0), (2, 0, 0)):  # TERM before the step: stops after it
        with pytest.raises(SearchInterrupted):
            run_search(_deepening_config(digits_dir), str(stopped),
                       faults=FaultHook(at_position=at, signal_name="TERM"))
    assert run_search(_deepening_config(digits_dir), str(stopped)) == genotype
    assert _metrics(stopped) == _metrics(straight)
    # the final 4-cell state, in the run that crossed the depth change after a resume
    _same_arrays(jax.device_get(final_state(stopped, _deepening_config(digits_dir))[0]),
                 jax.device_get(state))


def test_the_report_shows_the_depths():
    from prdarts_jax.analysis.summary import _layers

    assert _layers({"layers": 5, "schedule": {"cells": [3, 3, 5, 8]}}) == "3→5→8"
    assert _layers({"layers": 5, "schedule": {"cells": [4, 4]}}) == 4
    assert _layers({"layers": 5, "schedule": {"cells": []}}) == 5
