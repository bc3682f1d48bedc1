"""The program store: executables kept by what they compute, loaded without tracing."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prdarts_jax.loops import program_store
from prdarts_jax.runtime import compile_timer
from tests.helpers import last_number_on_eight_cpu_devices


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setattr(program_store, "directory", lambda: tmp_path / "programs")
    return tmp_path / "programs"


def _probe(x, w):
    return jnp.tanh(x @ w).sum(axis=0)


def _get(identity, args, calls):
    """The program through the store. Each test uses shapes of its own: JAX reuses an
    executable it built earlier in the process, and the store keeps only what was built."""
    jitted = jax.jit(_probe)

    def lower_and_compile():
        calls.append(identity)
        return jitted.lower(*args).compile()
    executable = program_store.compiled(identity, args, lower_and_compile)
    program_store.wait()   # written by the store's thread
    return executable


def test_a_stored_program_is_loaded_instead_of_compiled_and_computes_the_same(store,
                                                                             monkeypatch):
    monkeypatch.setattr(compile_timer, "PROGRAM_ABOVE_SECONDS", 0.0)
    args = (jnp.arange(39.0).reshape(13, 3) / 7, jnp.ones((3, 2)))
    calls = []
    before = compile_timer.snapshot()
    first = _get("probe|v1", args, calls)
    assert calls == ["probe|v1"] and len(list(store.glob("*.pkl"))) == 1
    second = _get("probe|v1", args, calls)
    assert calls == ["probe|v1"]     # not compiled again
    spent = compile_timer.since(before)
    assert (spent["store_misses"], spent["store_hits"]) == (1, 1)
    assert spent["programs"].get("probe", 0.0) > 0   # the load time, under the program's name
    np.testing.assert_array_equal(np.asarray(first(*args)), np.asarray(second(*args)))


def test_another_identity_or_argument_is_another_program(store):
    args = (jnp.ones((9, 3)), jnp.ones((3, 2)))
    jobs = [("probe|v1", args), ("probe|v2", args),
            ("probe|v1", (jnp.ones((10, 3)), jnp.ones((3, 2)))),
            ("probe|v1", (jnp.ones((9, 3), jnp.int32), jnp.ones((3, 2))))]
    calls = []
    for identity, a in jobs:
        _get(identity, a, calls)
    assert len(calls) == 4 and len({program_store.key(i, a) for i, a in jobs}) == 4
    # v2 lowers to the very program of v1: JAX reuses that executable, which is not stored again
    assert len(list(store.glob("*.pkl"))) == 3


def test_the_key_follows_the_source_the_flags_and_jax_settings(monkeypatch):
    args = (jnp.ones((4, 3)), 0.5)
    k = program_store.key("p", args)
    assert program_store.key("p", args) == k
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_enable_fast_math=false")
    assert program_store.key("p", args) != k
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    monkeypatch.setenv("PRDARTS_FUSION_BARRIERS", "0")   # a formulation switch read at trace time
    assert program_store.key("p", args) != k
    monkeypatch.delenv("PRDARTS_FUSION_BARRIERS")
    for setting, value, changes in ((jax.threefry_partitionable, False, True),
                                     (jax.log_compiles, True, False)):  # no program change
        with setting(value):
            assert (program_store.key("p", args) != k) == changes
    assert program_store.key("p", args) == k
    monkeypatch.setattr(program_store, "_source_digest", lambda: "edited")
    assert program_store.key("p", args) != k


def test_a_program_jax_found_in_its_cache_is_not_stored(store, monkeypatch):
    """XLA:CPU does not serialise an executable loaded from JAX's persistent cache whole: its
    copy would fail at its first call, so the store leaves such programs to that cache."""
    args = (jnp.ones((4, 3)), jnp.ones((3, 2)))

    def from_jax_cache():
        jax.monitoring.record_event("/jax/compilation_cache/cache_hits")
        return jax.jit(_probe).lower(*args).compile()

    program_store.compiled("probe|cached", args, from_jax_cache)
    assert not list(store.glob("*.pkl"))


def test_an_unreadable_entry_is_compiled_again(store, caplog):
    args = (jnp.ones((11, 3)), jnp.ones((3, 2)))
    calls = []
    _get("probe|v1", args, calls)
    (path,) = store.glob("*.pkl")
    path.write_bytes(b"not a program")
    again = _get("probe|v1", args, calls)
    assert len(calls) == 2 and "could not load the stored program" in caplog.text
    assert again(*args).shape == (2,)


def test_the_store_is_off_without_a_cache_folder_or_when_told(monkeypatch, tmp_path):
    monkeypatch.setattr(program_store, "_jax_cache_dir", lambda: str(tmp_path))
    monkeypatch.delenv(program_store.ENV, raising=False)
    assert program_store.directory() == tmp_path / program_store.SUBDIR
    monkeypatch.setenv(program_store.ENV, "off")
    assert program_store.directory() is None
    monkeypatch.delenv(program_store.ENV)
    monkeypatch.setattr(program_store, "_jax_cache_dir", lambda: None)
    assert program_store.directory() is None


def test_a_stored_program_keeps_one_executable_per_variant(store):
    jitted = jax.jit(_probe)
    stored = program_store.StoredProgram(jitted, "probe|v1",
                                         lambda args: program_store.placement_of(*args))
    assert stored.__name__ == "_probe"
    a, b = (jnp.ones((15, 3)), jnp.ones((3, 2))), (jnp.ones((17, 3)), jnp.ones((3, 2)))
    for args in (a, a, b, a):
        np.testing.assert_allclose(stored(*args), jitted(*args), rtol=1e-6)
    program_store.wait()
    assert len(stored._executables) == 2 and len(list(store.glob("*.pkl"))) == 2


def test_programs_are_written_in_the_background_and_waited_for(store, monkeypatch):
    """The compile returns before its program is on disk; `wait` (also run at exit) blocks
    until it is."""
    import threading
    release = threading.Event()
    save = program_store._save
    monkeypatch.setattr(program_store, "_save", lambda *a: (release.wait(30), save(*a)))
    args = (jnp.ones((19, 3)), jnp.ones((3, 2)))
    jitted = jax.jit(_probe)
    program_store.compiled("probe|later", args, lambda: jitted.lower(*args).compile())
    assert not list(store.glob("*.pkl"))
    release.set()
    program_store.wait()
    assert len(list(store.glob("*.pkl"))) == 1



_ON_EIGHT_DEVICES = """
import sys
from pathlib import Path
import jax, jax.numpy as jnp, numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from prdarts_jax.loops import program_store
store = Path({store!r})
program_store.directory = lambda: store
for devices in (jax.devices()[1:2], jax.devices()):
    mesh = Mesh(np.asarray(devices), ("data",))
    batch = NamedSharding(mesh, PartitionSpec("data"))
    x = jax.device_put(jnp.arange(24.0).reshape(8, 3) / 5, batch)
    w = jax.device_put(jnp.ones((3, 2)), NamedSharding(mesh, PartitionSpec()))
    jitted = jax.jit(lambda x, w: jnp.tanh(x @ w).sum(axis=0))
    built = program_store.compiled("probe|devices", (x, w), lambda: jitted.lower(x, w).compile())
    program_store.wait()
    loaded = program_store.compiled("probe|devices", (x, w), lambda: sys.exit("compiled again"))
    assert loaded is not built
    on = program_store.execution_devices(loaded)
    assert on == devices, on
    np.testing.assert_array_equal(np.asarray(loaded(x, w)), np.asarray(built(x, w)))
print(len(list(store.glob("*.pkl"))))
"""


def test_a_stored_program_is_loaded_onto_its_own_devices(tmp_path):
    """On a host with 8 devices, a program of one device (here device 1) and one of all eight
    are loaded onto the devices they were built for, and run there (by default JAX loads a
    serialised executable onto every device: the 1-device one then wants 8 shards per
    argument, which failed the 8-device tests on a warm store)."""
    script = _ON_EIGHT_DEVICES.format(store=str(tmp_path / "programs"))
    assert last_number_on_eight_cpu_devices(script) == 2
