"""Test-session set-up: a persistent XLA cache (reruns and CI on this machine skip compiles) and
one tiny search run straight through, shared by the search and resume tests."""

import os

import pytest

from prdarts_jax.runtime import compile_cache

compile_cache.enable(os.environ.get("PRDARTS_TEST_XLA_CACHE",
                                    os.path.join(compile_cache.DEFAULT_DIR, "tests")))


@pytest.fixture(scope="session")
def digits_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("tfds")


@pytest.fixture(scope="session")
def straight_search(tmp_path_factory, digits_dir):
    """(workdir, genotype) of the tiny search run without interruption."""
    from prdarts_jax.search.loop import run_search
    from tests.helpers import tiny_config

    workdir = tmp_path_factory.mktemp("search")
    return workdir, run_search(tiny_config(digits_dir), str(workdir))
