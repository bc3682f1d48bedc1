"""The XLA:CPU options a search sets: appended once, never over the user's, and known to XLA."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from prdarts_jax.errors import ConfigError
from prdarts_jax.runtime import xla_options

FLAG = xla_options.CPU_FLAGS[0]


def test_apply_appends_the_search_flags_to_xla_flags():
    env = {"XLA_FLAGS": "--xla_dump_to=/tmp/d"}
    assert xla_options.apply(env, xla_options.TESTED_JAXLIB) == xla_options.CPU_FLAGS
    assert env["XLA_FLAGS"] == f"--xla_dump_to=/tmp/d {FLAG}"
    assert xla_options.apply(env, xla_options.TESTED_JAXLIB) == ()   # idempotent
    assert env["XLA_FLAGS"] == f"--xla_dump_to=/tmp/d {FLAG}"


def test_apply_keeps_an_option_the_user_set():
    env = {"XLA_FLAGS": "--xla_cpu_experimental_ynn_fusion_type=+reduce"}
    assert xla_options.apply(env, xla_options.TESTED_JAXLIB) == ()
    assert env["XLA_FLAGS"] == "--xla_cpu_experimental_ynn_fusion_type=+reduce"


def test_env_turns_the_flags_off_or_replaces_them():
    env = {xla_options.ENV: "none"}
    assert xla_options.apply(env, xla_options.TESTED_JAXLIB) == ()
    assert "XLA_FLAGS" not in env
    env = {xla_options.ENV: "--xla_cpu_enable_fast_math=false"}
    assert xla_options.apply(env, (9, 9)) == ("--xla_cpu_enable_fast_math=false",)
    assert env["XLA_FLAGS"] == "--xla_cpu_enable_fast_math=false"


def test_a_search_sets_them_whatever_its_depthwise_formulation():
    env = {xla_options.ENV: FLAG}   # explicit flags: no jaxlib gate in the way
    assert xla_options.for_search(env) == (FLAG,)
    assert env["XLA_FLAGS"] == FLAG


def test_cpu_library_fusions_choose_the_search_flags():
    none = ("--xla_cpu_experimental_ynn_fusion_type=",)
    eltwise = ("--xla_cpu_experimental_ynn_fusion_type=+eltwise",)
    env: dict[str, str] = {}
    assert xla_options.search_flags("auto") == none == xla_options.CPU_FLAGS
    assert xla_options.search_flags("none") == none
    assert xla_options.search_flags("xla") == ()
    assert xla_options.search_flags("eltwise") == eltwise
    assert xla_options.for_search(env, fusions="xla") == () and "XLA_FLAGS" not in env


def test_an_unknown_cpu_library_fusions_value_is_one_line():
    with pytest.raises(ConfigError, match="cpu_library_fusions='ynn' is unknown; use one of"):
        xla_options.search_flags("ynn")


def test_an_untested_jaxlib_gets_nothing():
    env: dict[str, str] = {}
    assert xla_options.apply(env, (0, 99)) == ()
    assert env == {}


def test_this_jaxlib_is_the_tested_one_and_xla_accepts_the_flags():
    """A jaxlib without these options would abort the search at its first compile."""
    code = ("import os; from prdarts_jax.runtime import xla_options; added = xla_options.apply(); "
            "added += xla_options.for_retraining(avx512=True); "
            "import jax; print(float(jax.jit(lambda x: x * 2 + 1)(1.0)), added, "
            "os.environ['XLA_FLAGS'])")
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", xla_options.ENV)}
    env["JAX_PLATFORMS"] = "cpu"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith("3.0 ")
    assert FLAG in out.stdout.split(")", 1)[1]
    assert xla_options.RETRAINING_CPU_FLAGS[0] in out.stdout.split(")", 1)[1]


def test_retraining_asks_for_wide_vectors_only_on_a_cpu_with_avx512(tmp_path):
    wide = xla_options.RETRAINING_CPU_FLAGS
    env: dict[str, str] = {}
    tested = xla_options.TESTED_JAXLIB
    assert xla_options.for_retraining(env, avx512=False, jaxlib_series=tested) == ()
    assert env == {}
    assert xla_options.for_retraining(env, avx512=True, jaxlib_series=tested) == wide
    assert env["XLA_FLAGS"] == wide[0] and FLAG not in env["XLA_FLAGS"]
    off = {xla_options.ENV: "none"}
    assert xla_options.for_retraining(off, avx512=True) == () and "XLA_FLAGS" not in off
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 fma\n")
    assert not xla_options.has_avx512(str(cpuinfo))
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512dq\n")
    assert xla_options.has_avx512(str(cpuinfo))
    assert not xla_options.has_avx512(str(tmp_path / "missing"))


def test_nothing_is_added_to_this_process_once_its_backend_runs(monkeypatch):
    """XLA read its flags already; they would only leak into child processes."""
    import jax
    jax.devices()
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    monkeypatch.setenv(xla_options.ENV, FLAG)
    assert xla_options.apply() == ()
    assert xla_options.for_retraining(avx512=True) == ()
    assert xla_options.for_search() == ()                  # passes os.environ on explicitly
    assert "XLA_FLAGS" not in os.environ
