"""host_memory: the CLIs restart with glibc's huge-page tunable where XLA:CPU gains from it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from prdarts_jax import host_memory

_CPU = {"JAX_PLATFORMS": "cpu"}


@pytest.mark.parametrize("value,expected", [(None, "auto"), ("auto", "auto"), ("1", "on"),
                                            ("ON", "on"), ("0", "off"), ("false", "off")])
def test_mode_reads_the_environment(value, expected):
    environ = {} if value is None else {host_memory.ENV: value}
    assert host_memory.mode(environ) == expected


def test_a_bad_mode_is_named():
    with pytest.raises(ValueError, match=f"{host_memory.ENV}='sometimes'.*auto, 1 or 0"):
        host_memory.mode({host_memory.ENV: "sometimes"})


@pytest.mark.parametrize("platforms,expected", [("cpu", False), ("cuda", True),
                                                ("cuda,cpu", True), ("tpu", True)])
def test_jax_platforms_decides_the_backend(platforms, expected):
    assert host_memory.accelerator_expected({"JAX_PLATFORMS": platforms}) is expected


def test_thp_mode_reads_the_bracketed_choice(tmp_path):
    path = tmp_path / "enabled"
    path.write_text("always [madvise] never\n")
    assert host_memory.thp_mode(str(path)) == "madvise"
    assert host_memory.thp_mode(str(tmp_path / "missing")) == ""


def test_the_restart_environment_adds_the_tunable():
    env = host_memory.huge_page_environ({**_CPU, "GLIBC_TUNABLES": "glibc.malloc.arena_max=2"},
                                        glibc=(2, 36), thp="madvise")
    assert env["GLIBC_TUNABLES"] == "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1"
    assert env["JAX_PLATFORMS"] == "cpu"
    assert host_memory.huge_pages_on(env, glibc=(2, 36), thp="madvise")
    assert not host_memory.huge_pages_on(env, glibc=(2, 34), thp="madvise")
    assert not host_memory.huge_pages_on(env, glibc=(2, 36), thp="never")
    assert host_memory.huge_page_environ(env, glibc=(2, 36), thp="madvise") is None


@pytest.mark.parametrize("environ,glibc,thp", [
    ({**_CPU, host_memory.ENV: "0"}, (2, 36), "madvise"),         # switched off
    ({"JAX_PLATFORMS": "cuda"}, (2, 36), "madvise"),               # an accelerator (auto)
    ({**_CPU, "GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}, (2, 36), "madvise"),  # user's own
    (_CPU, (2, 34), "madvise"),                                     # glibc without the tunable
    (_CPU, (), "madvise"),                                          # not glibc
    (_CPU, (2, 36), "never"),                                       # kernel without THP
    (_CPU, (2, 36), "always"),                      # the kernel does it; glibc ignores the tunable
])
def test_no_restart_where_it_cannot_help_or_is_not_wanted(environ, glibc, thp):
    assert host_memory.huge_page_environ(environ, glibc=glibc, thp=thp) is None


def test_on_restarts_with_an_accelerator_too():
    env = host_memory.huge_page_environ({"JAX_PLATFORMS": "cuda", host_memory.ENV: "1"},
                                        glibc=(2, 36), thp="madvise")
    assert env is not None and host_memory.TUNABLE in env["GLIBC_TUNABLES"]


def test_the_log_line_says_who_set_the_tunable(monkeypatch):
    monkeypatch.setattr(host_memory, "glibc_version", lambda: (2, 36))
    monkeypatch.setattr(host_memory, "thp_mode", lambda: "madvise")
    ours = host_memory.huge_page_environ(_CPU)
    assert f"{host_memory.ENV}=0: off" in host_memory.describe(ours)
    theirs = {"GLIBC_TUNABLES": host_memory.TUNABLE}
    assert "set in GLIBC_TUNABLES" in host_memory.describe(theirs)
    assert host_memory.describe(_CPU) == ""


_PROBE = textwrap.dedent("""
    import resource, sys
    from prdarts_jax import host_memory
    host_memory.restart_with_huge_pages()
    import jax, jax.numpy as jnp
    from prdarts_jax.fusion_barrier import materialize
    f = jax.jit(lambda x: (materialize(x + 1.0) ** 2).sum())   # a 64 MiB temporary buffer
    x = jnp.ones((1 << 24,), jnp.float32)
    faults = []
    for _ in range(6):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        jax.block_until_ready(f(x))
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    print(host_memory.huge_pages_on(), *faults)
""")


def _clean_environ() -> dict[str, str]:
    return {k: v for k, v in os.environ.items()
            if k not in ("GLIBC_TUNABLES", host_memory._MARKER)}


def _probe(setting: str) -> tuple[bool, list[int]]:
    env = _clean_environ()
    env.update(_CPU, **{host_memory.ENV: setting})
    out = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True,
                         text=True, check=True, timeout=300).stdout.split()
    return out[0] == "True", [int(v) for v in out[1:]]


@pytest.mark.skipif(host_memory.huge_page_environ({**_CPU, host_memory.ENV: "1"}) is None,
                    reason="needs glibc >= 2.35 and a kernel with transparent huge pages")
def test_the_restarted_process_faults_in_far_fewer_pages_per_execution():
    pages = (64 << 20) // os.sysconf("SC_PAGE_SIZE")
    on, faults = _probe("1")
    assert on
    assert max(faults[1:]) < pages // 16, faults
    on, faults = _probe("0")
    assert not on
    assert min(faults[1:]) >= pages, faults


@pytest.mark.skipif(host_memory.huge_page_environ({**_CPU, host_memory.ENV: "1"}) is None,
                    reason="needs glibc >= 2.35 and a kernel with transparent huge pages")
def test_a_cli_restarts_itself_once_with_its_arguments():
    env = _clean_environ()
    env.update(_CPU, **{host_memory.ENV: "1"})
    done = subprocess.run([sys.executable, "-m", "prdarts_jax.train", "--config",
                           "configs/train_digits.py", "--count_params"], env=env,
                          capture_output=True, text=True, timeout=120,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("params: ")
    assert done.stderr.count("transparent huge pages") == 1, done.stderr


def test_a_bad_setting_stops_a_cli_with_one_line():
    env = {**os.environ, **_CPU, host_memory.ENV: "maybe"}
    done = subprocess.run([sys.executable, "-m", "prdarts_jax.evaluate", "--workdir", "x"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == f"error: {host_memory.ENV}='maybe' is not understood: use " \
                                  "auto, 1 or 0"


def test_a_program_read_from_stdin_goes_on_unrestarted():
    env = _clean_environ()
    env.update(_CPU, **{host_memory.ENV: "1"})
    code = "from prdarts_jax import host_memory\nhost_memory.restart_with_huge_pages()\n" \
           "print('went on', host_memory._MARKER in __import__('os').environ)\n"
    done = subprocess.run([sys.executable, "-"], input=code, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.stdout.strip() == "went on False", done.stderr
