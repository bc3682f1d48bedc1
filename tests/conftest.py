"""Test-session set-up: a persistent XLA cache (reruns and CI on this machine skip compiles) and
one tiny search run straight through, shared by the search and resume tests."""

import os

import pytest

from prdarts_jax.runtime import compile_cache

TEST_XLA_CACHE = os.environ.get("PRDARTS_TEST_XLA_CACHE",
                                os.path.join(compile_cache.DEFAULT_DIR, "tests"))
compile_cache.enable(TEST_XLA_CACHE)


def pytest_addoption(parser):
    parser.addoption("--slow", action="store_true",
                     help="also run the tests marked slow (make test-all; PRDARTS_SLOW_TESTS=1)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--slow") or os.environ.get("PRDARTS_SLOW_TESTS") == "1":
        return
    skip = pytest.mark.skip(reason="slow: run with --slow (make test-all)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


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
