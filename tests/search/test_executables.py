"""Executables per batch size: the jitted program's results, one compile per size, and sizes
compiled ahead in a background thread."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prdarts_jax.search.batch_size.executables import BatchPrograms


def _counting_program():
    traces = []

    def program(w, idx):
        traces.append(idx.shape[0])
        return jnp.sum(w[idx] ** 2), idx.shape[0]

    return jax.jit(program), traces


def test_calls_match_jit_and_compile_once_per_size():
    jitted, traces = _counting_program()
    programs = BatchPrograms(jitted, batch_arg=1)
    w = jnp.arange(10.0)
    for idx in (np.arange(4), np.arange(1, 5), np.arange(6)):
        assert float(programs(w, idx)[0]) == float(jnp.sum(w[idx] ** 2))
    assert traces == [4, 6]
    assert programs.sizes() == [4, 6]
    assert programs.executable((w, np.arange(4))).memory_analysis() is not None
    assert traces == [4, 6]


def test_prefetch_compiles_ahead_in_the_background():
    jitted, traces = _counting_program()
    programs = BatchPrograms(jitted, batch_arg=1, threads=1)
    w = jnp.arange(10.0)
    programs(w, np.arange(2))
    programs.prefetch((w, np.arange(2)), [4, 8])
    assert programs.sizes() == [2, 4, 8]
    assert float(programs(w, np.arange(8))[0]) == float(jnp.sum(w[:8] ** 2))
    programs.executable((w, np.arange(4)))  # waits for the background compile if still running
    assert sorted(traces) == [2, 4, 8]


def test_prefetch_is_a_no_op_without_threads():
    jitted, traces = _counting_program()
    programs = BatchPrograms(jitted, batch_arg=1)
    programs.prefetch((jnp.arange(10.0), np.arange(2)), [4])
    assert programs.sizes() == [] and traces == []


def test_a_failed_background_compile_raises_where_the_size_is_needed():
    programs = BatchPrograms(jax.jit(lambda w, idx: w[idx] @ jnp.ones(3)), batch_arg=1,
                             threads=1)
    w = jnp.ones((10, 2))  # (b, 2) @ (3,) cannot compile
    programs.prefetch((w, np.arange(2)), [4])
    with pytest.raises(TypeError):
        programs(w, np.arange(4))
