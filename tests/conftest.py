"""Test-session set-up: a persistent XLA cache, so reruns (and CI on this machine) skip compiles."""

import os

from prdarts_jax import compile_cache

compile_cache.enable(os.environ.get("PRDARTS_TEST_XLA_CACHE",
                                    os.path.join(compile_cache.DEFAULT_DIR, "tests")))
