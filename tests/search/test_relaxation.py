"""relaxation='gumbel' in the search: τ per cycle, its programs, and exact resume."""

import json

import chex
import jax
import pytest

from prdarts_jax.errors import SearchInterrupted
from prdarts_jax.models.relaxation import SOFTMAX, Relaxation
from prdarts_jax.runtime.interrupts import FaultHook
from prdarts_jax.search.config import ConfigError, base_config, validate
from prdarts_jax.search.loop import run_search
from prdarts_jax.search.relaxation import cycle_tau, relaxation_of, tau_args
from tests.helpers import final_state, tiny_config, without_timings


def test_tau_per_cycle_and_the_relaxation_that_keys_the_programs():
    config = base_config()
    assert relaxation_of(config) is SOFTMAX
    assert cycle_tau(config, 1) is None and tau_args(config, 1) == ()
    config.relaxation = "gumbel"
    assert relaxation_of(config) == Relaxation("gumbel", False)
    assert cycle_tau(config, 3) == 1.0                       # empty schedule: 1.0
    config.gumbel_hard = True
    config.schedule.tau = tuple(0.5 * (i + 1) for i in range(len(config.schedule.epochs)))
    assert relaxation_of(config) == Relaxation("gumbel", True) != Relaxation("gumbel", False)
    assert cycle_tau(config, 2) == 1.0 and float(tau_args(config, 4)[0]) == 2.0
    config.schedule.tau = (1.0, 0.0)
    with pytest.raises(ConfigError, match="schedule.tau"):
        validate(config)


def _gumbel_config(data_dir):
    """Two short cycles (a searching epoch in each; the second with two ops per edge, cheap to
    compile), hard samples, τ 2.0 then 0.5."""
    config = tiny_config(data_dir, max_steps_per_epoch=4, relaxation="gumbel", gumbel_hard=True)
    config.schedule.epochs, config.schedule.grace = (2, 1), (1, 0)
    config.schedule.morphs, config.schedule.keep = (0, 0), (2, 1)
    config.schedule.tau = (2.0, 0.5)
    return config


def _records(workdir):
    out = []
    for line in (workdir / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        out.append(without_timings(record))
    return out


def test_a_gumbel_search_stopped_and_resumed_is_exact(tmp_path, digits_dir):
    """Stopped mid-epoch in cycle 1's searching epoch, resumed: the same α, weights, metrics
    and genotype as straight through (the noise comes from the steps' keys)."""
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    genotype = run_search(_gumbel_config(digits_dir), str(straight))
    assert genotype is not None
    epochs = [r for r in _records(straight) if r["type"] == "epoch"]
    assert [(r["cycle"], r["tau"]) for r in epochs] == [(1, 2.0), (1, 2.0), (2, 0.5)]
    with pytest.raises(SearchInterrupted):
        run_search(_gumbel_config(digits_dir), str(stopped),
                   faults=FaultHook(at_position=(1, 1, 2), signal_name="TERM"))
    assert run_search(_gumbel_config(digits_dir), str(stopped)) == genotype
    assert _records(stopped) == _records(straight)
    (a, meta_a), (b, meta_b) = (final_state(w, _gumbel_config(digits_dir))
                                for w in (stopped, straight))
    assert meta_a["position"] == meta_b["position"]
    chex.assert_trees_all_equal(jax.device_get(a), jax.device_get(b))
