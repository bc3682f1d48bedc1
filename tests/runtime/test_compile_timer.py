"""Compile seconds per program and the persistent cache's hits and misses (`compile_timer`)."""

import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest

from prdarts_jax.runtime import compile_timer
from tests.helpers import ROOT


@pytest.mark.parametrize("raw, name", [("jit(eval_batch)", "eval_batch"), ("grads", "grads"),
                                       ("pjit(f)", "f"), ("jit(<lambda>)", "<lambda>")])
def test_program_names_are_the_same_for_every_phase(raw, name):
    assert compile_timer.program_name(raw) == name


def test_a_new_program_is_counted_under_its_name(monkeypatch):
    monkeypatch.setattr(compile_timer, "PROGRAM_ABOVE_SECONDS", 0.0)
    before = compile_timer.snapshot()

    def timer_probe(x):
        return jnp.sin(x) * 3.0 + jnp.cumsum(x)

    jax.jit(timer_probe)(jnp.arange(7.0)).block_until_ready()
    spent = compile_timer.since(before)
    assert spent["programs"]["timer_probe"] > 0
    assert sum(spent["programs"].values()) == pytest.approx(
        compile_timer.total_seconds() - before.seconds, abs=0.01)


def test_small_programs_are_summed_as_other(monkeypatch):
    monkeypatch.setattr(compile_timer, "PROGRAM_ABOVE_SECONDS", 1e9)
    before = compile_timer.snapshot()
    jax.jit(lambda x: x * 5.0 - 1.0)(jnp.arange(3.0)).block_until_ready()
    assert set(compile_timer.since(before)["programs"]) == {compile_timer.OTHER}


def test_cache_events_are_counted():
    before = compile_timer.snapshot()
    jax.monitoring.record_event("/jax/compilation_cache/cache_hits")
    jax.monitoring.record_event("/jax/compilation_cache/cache_misses")
    jax.monitoring.record_event("/jax/compilation_cache/cache_hits")
    spent = compile_timer.since(before)
    assert (spent["cache_hits"], spent["cache_misses"]) == (2, 1)


def test_add_sums_entries():
    a = {"programs": {"grads": 1.5, "other": 0.25}, "cache_hits": 1, "cache_misses": 0}
    b = {"programs": {"grads": 0.5, "eval_batch": 2.0}, "cache_hits": 0, "cache_misses": 2}
    assert compile_timer.add(a, b) == {
        "programs": {"eval_batch": 2.0, "grads": 2.0, "other": 0.25},
        "cache_hits": 1, "cache_misses": 2, "store_hits": 0, "store_misses": 0}
    assert compile_timer.add({}, {}) == {"programs": {}, "cache_hits": 0, "cache_misses": 0,
                                         "store_hits": 0, "store_misses": 0}


def test_time_spent_outside_jax_compiles_is_recorded_under_its_program():
    before = compile_timer.snapshot()
    compile_timer.record("grads", 1.25)
    compile_timer.count("store_hits")
    spent = compile_timer.since(before)
    assert spent["programs"] == {"grads": 1.25} and spent["store_hits"] == 1
    assert compile_timer.total_seconds() - before.seconds == pytest.approx(1.25)


_TWICE = """
import json, sys
sys.path.insert(0, {root!r})
import jax, jax.numpy as jnp
from prdarts_jax.runtime import compile_cache, compile_timer
compile_cache.enable({cache!r})
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
before = compile_timer.snapshot()
def cached_probe(x):
    return jnp.tanh(x) @ x.T
jax.jit(cached_probe)(jnp.ones((4, 4))).block_until_ready()
print(json.dumps(compile_timer.since(before)))
"""


def test_a_second_process_finds_the_program_in_the_persistent_cache(tmp_path):
    """The first process compiles and writes the program (a miss), the next loads it (a hit):
    what the cycle records count."""
    code = _TWICE.format(root=ROOT, cache=str(tmp_path / "xla"))
    runs = [json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True,
                                      text=True, check=True, timeout=120).stdout.splitlines()[-1])
            for _ in range(2)]
    assert runs[0]["cache_misses"] >= 1 and runs[0]["cache_hits"] == 0
    assert runs[1]["cache_hits"] >= 1 and runs[1]["cache_misses"] == 0
