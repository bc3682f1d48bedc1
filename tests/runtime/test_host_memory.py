"""host_memory: the CLIs restart with jemalloc or glibc's huge pages where XLA:CPU gains from it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from prdarts_jax.runtime import host_memory

_CPU = {"JAX_PLATFORMS": "cpu"}
_LIB = "/opt/lib/libjemalloc.so.2"
_HAS_JEMALLOC = host_memory.find_jemalloc() is not None
_ACTS_ON_TUNABLE = host_memory._glibc_acts_on_tunable(None, None)
_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.parametrize("environ,expected", [
    ({}, "auto"), ({host_memory.ENV: "auto"}, "auto"), ({host_memory.ENV: "JEMALLOC"}, "jemalloc"),
    ({host_memory.ENV: "huge_pages"}, "huge_pages"), ({host_memory.ENV: "0"}, "off"),
    ({host_memory.ENV: "off"}, "off"),
    ({host_memory.LEGACY_ENV: "1"}, "huge_pages"), ({host_memory.LEGACY_ENV: "0"}, "off"),
    ({host_memory.LEGACY_ENV: "0", host_memory.ENV: "jemalloc"}, "jemalloc"),
])
def test_mode_reads_the_environment(environ, expected):
    assert host_memory.mode(environ) == expected


def test_a_bad_mode_is_named():
    with pytest.raises(ValueError, match=f"{host_memory.ENV}='sometimes'.*auto, jemalloc"):
        host_memory.mode({host_memory.ENV: "sometimes"})
    with pytest.raises(ValueError, match=f"{host_memory.LEGACY_ENV}='x'.*{host_memory.ENV}="):
        host_memory.mode({host_memory.LEGACY_ENV: "x"})


@pytest.mark.parametrize("platforms,expected", [("cpu", False), ("cuda", True),
                                                ("cuda,cpu", True), ("tpu", True)])
def test_jax_platforms_decides_the_backend(platforms, expected):
    assert host_memory.accelerator_expected({"JAX_PLATFORMS": platforms}) is expected


def test_thp_mode_reads_the_bracketed_choice(tmp_path):
    path = tmp_path / "enabled"
    path.write_text("always [madvise] never\n")
    assert host_memory.thp_mode(str(path)) == "madvise"
    assert host_memory.thp_mode(str(tmp_path / "missing")) == ""


def test_jemalloc_is_preferred_and_keeps_what_the_user_set():
    env = host_memory.restart_environ({**_CPU, "LD_PRELOAD": "libfoo.so", "MALLOC_CONF": "x:1"},
                                      glibc=(2, 36), thp="madvise", jemalloc=_LIB)
    assert env["LD_PRELOAD"] == f"{_LIB}:libfoo.so"
    assert env["MALLOC_CONF"] == "x:1"
    assert "GLIBC_TUNABLES" not in env
    env = host_memory.restart_environ(_CPU, glibc=(2, 36), thp="madvise", jemalloc=_LIB)
    assert env["LD_PRELOAD"] == _LIB and env["MALLOC_CONF"] == host_memory.JEMALLOC_CONF
    assert host_memory.restart_environ(env, glibc=(2, 36), thp="madvise", jemalloc=_LIB) is None


def test_without_jemalloc_the_restart_adds_the_huge_page_tunable():
    env = host_memory.restart_environ({**_CPU, "GLIBC_TUNABLES": "glibc.malloc.arena_max=2"},
                                      glibc=(2, 36), thp="madvise", jemalloc=None)
    assert env["GLIBC_TUNABLES"] == "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1"
    assert "LD_PRELOAD" not in env and env["JAX_PLATFORMS"] == "cpu"
    assert host_memory.huge_pages_on(env, glibc=(2, 36), thp="madvise")
    assert not host_memory.huge_pages_on(env, glibc=(2, 34), thp="madvise")
    assert not host_memory.huge_pages_on(env, glibc=(2, 36), thp="never")
    assert host_memory.restart_environ(env, glibc=(2, 36), thp="madvise", jemalloc=None) is None
    forced = host_memory.restart_environ({**_CPU, host_memory.ENV: "huge_pages"},
                                         glibc=(2, 36), thp="madvise", jemalloc=_LIB)
    assert "LD_PRELOAD" not in forced and host_memory.TUNABLE in forced["GLIBC_TUNABLES"]


@pytest.mark.parametrize("environ,glibc,thp,lib", [
    ({**_CPU, host_memory.ENV: "off"}, (2, 36), "madvise", _LIB),          # switched off
    ({"JAX_PLATFORMS": "cuda"}, (2, 36), "madvise", _LIB),                  # an accelerator (auto)
    ({**_CPU, "GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}, (2, 36), "madvise", _LIB),  # user's
    ({**_CPU, "LD_PRELOAD": "/x/libjemalloc.so"}, (2, 36), "madvise", _LIB),          # user's
    (_CPU, (2, 34), "madvise", None),                      # no jemalloc, glibc without the tunable
    (_CPU, (), "madvise", None),                                            # not glibc
    (_CPU, (2, 36), "never", None),                                         # kernel without THP
    (_CPU, (2, 36), "always", None),            # the kernel does it; glibc ignores the tunable
])
def test_no_restart_where_it_cannot_help_or_is_not_wanted(environ, glibc, thp, lib):
    assert host_memory.restart_environ(environ, glibc=glibc, thp=thp, jemalloc=lib) is None


def test_an_explicit_remedy_applies_with_an_accelerator_too():
    cuda = {"JAX_PLATFORMS": "cuda"}
    env = host_memory.restart_environ({**cuda, host_memory.ENV: "jemalloc"}, jemalloc=_LIB)
    assert env["LD_PRELOAD"] == _LIB
    env = host_memory.restart_environ({**cuda, host_memory.LEGACY_ENV: "1"},
                                      glibc=(2, 36), thp="madvise", jemalloc=_LIB)
    assert host_memory.TUNABLE in env["GLIBC_TUNABLES"]


def test_jemalloc_asked_for_but_missing_is_named(tmp_path):
    with pytest.raises(ValueError, match="jemalloc was not found: install it"):
        host_memory.restart_environ({host_memory.ENV: "jemalloc"}, jemalloc=None)
    missing = str(tmp_path / "libjemalloc.so.2")
    with pytest.raises(ValueError, match=f"{host_memory.JEMALLOC_ENV}=.* is not a file"):
        host_memory.find_jemalloc({host_memory.JEMALLOC_ENV: missing})
    (tmp_path / "libjemalloc.so.2").write_bytes(b"")
    assert host_memory.find_jemalloc({host_memory.JEMALLOC_ENV: missing}) == missing


def test_the_log_line_says_who_set_the_remedy(monkeypatch):
    monkeypatch.setattr(host_memory, "jemalloc_loaded", lambda: False)
    monkeypatch.setattr(host_memory, "glibc_version", lambda: (2, 36))
    monkeypatch.setattr(host_memory, "thp_mode", lambda: "madvise")
    ours = host_memory.restart_environ(_CPU, jemalloc=None)
    assert (f"chosen by prdarts_jax; {host_memory.ENV}=off turns it off"
            in host_memory.describe(ours))
    assert "huge pages" in host_memory.describe(ours)
    theirs = {"GLIBC_TUNABLES": host_memory.TUNABLE}
    assert "set in your environment" in host_memory.describe(theirs)
    assert host_memory.describe(_CPU) == ""
    monkeypatch.setattr(host_memory, "jemalloc_loaded", lambda: True)
    ours = host_memory.restart_environ(_CPU, jemalloc=_LIB)
    assert host_memory.describe(ours).startswith("host memory: jemalloc, which keeps freed")
    assert "set in your environment" in host_memory.describe(_CPU)


def test_jemalloc_loaded_reads_the_memory_map(tmp_path):
    maps = tmp_path / "maps"
    maps.write_text("7f00-7f01 r-xp 0 08:01 1 /usr/lib/libc.so.6\n")
    assert not host_memory.jemalloc_loaded(str(maps))
    maps.write_text("7f00-7f01 r-xp 0 08:01 1 /usr/lib/x86_64-linux-gnu/libjemalloc.so.2\n")
    assert host_memory.jemalloc_loaded(str(maps))
    assert not host_memory.jemalloc_loaded(str(tmp_path / "missing"))


_PROBE = textwrap.dedent("""
    import resource, sys
    from prdarts_jax.runtime import host_memory
    host_memory.restart()
    import jax, jax.numpy as jnp
    from prdarts_jax.kernels.fusion_barrier import materialize
    f = jax.jit(lambda x: (materialize(x + 1.0) ** 2).sum())   # a 64 MiB temporary buffer
    x = jnp.ones((1 << 24,), jnp.float32)
    faults = []
    for _ in range(8):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        jax.block_until_ready(f(x))
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    print(host_memory.active() or "none", *faults)
""")


def _clean_environ() -> dict[str, str]:
    return {k: v for k, v in os.environ.items()
            if k not in ("GLIBC_TUNABLES", "LD_PRELOAD", "MALLOC_CONF", host_memory._MARKER,
                         host_memory.LEGACY_ENV)}


def _probe(setting: str) -> tuple[str, list[int]]:
    env = _clean_environ()
    env.update(_CPU, **{host_memory.ENV: setting})
    out = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True,
                         text=True, check=True, timeout=300).stdout.split()
    return out[0], [int(v) for v in out[1:]]


_PAGES = (64 << 20) // os.sysconf("SC_PAGE_SIZE")


@pytest.mark.parametrize("remedy", [
    pytest.param("jemalloc", marks=pytest.mark.skipif(
        not _HAS_JEMALLOC, reason="needs jemalloc (apt install libjemalloc2)")),
    pytest.param("huge_pages", marks=pytest.mark.skipif(
        not _ACTS_ON_TUNABLE, reason="needs glibc >= 2.35 and the kernel's THP in madvise mode")),
])
def test_the_restarted_process_faults_in_far_fewer_pages_per_execution(remedy):
    active, faults = _probe(remedy)
    assert active == remedy
    # Without a remedy every execution faults its whole buffer in. With one, all but one or two
    # fault (almost) nothing: jemalloc places the buffer afresh once or twice, at an execution
    # that varies from run to run (seen: the 2nd to the 6th), then reuses it.
    afresh = [f for f in faults[1:] if f >= _PAGES // 16]
    assert len(afresh) <= 2, faults


def test_without_a_remedy_every_execution_faults_its_buffer_in():
    active, faults = _probe("off")
    assert active == "none"
    assert min(faults[1:]) >= _PAGES, faults


@pytest.mark.skipif(not (_HAS_JEMALLOC or _ACTS_ON_TUNABLE),
                    reason="needs jemalloc, or glibc >= 2.35 with the kernel's THP in madvise mode")
def test_a_cli_restarts_itself_once_with_its_arguments():
    env = _clean_environ()
    env.update(_CPU, **{host_memory.ENV: "auto"})
    done = subprocess.run([sys.executable, "-m", "prdarts_jax.train", "--config",
                           "configs/train_digits.py", "--count_params"], env=env,
                          capture_output=True, text=True, timeout=120, cwd=_ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("params: ")
    assert done.stderr.count("host memory: ") == 1, done.stderr
    assert ("jemalloc, which keeps freed" in done.stderr) is _HAS_JEMALLOC, done.stderr


def test_a_bad_setting_stops_a_cli_with_one_line():
    env = {**_clean_environ(), **_CPU, host_memory.ENV: "maybe"}
    done = subprocess.run([sys.executable, "-m", "prdarts_jax.evaluate", "--workdir", "x"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        f"error: {host_memory.ENV}='maybe' is not understood: use auto, jemalloc, huge_pages "
        "or off")


def test_a_program_read_from_stdin_goes_on_unrestarted():
    env = _clean_environ()
    env.update(_CPU, **{host_memory.ENV: "huge_pages"})
    code = "from prdarts_jax.runtime import host_memory\nhost_memory.restart()\n" \
           "print('went on', host_memory._MARKER in __import__('os').environ)\n"
    done = subprocess.run([sys.executable, "-"], input=code, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.stdout.strip() == "went on False", done.stderr


def test_release_free_memory_returns_freed_memory_to_the_kernel():
    code = textwrap.dedent("""
        import numpy as np
        from prdarts_jax.runtime import host_memory
        rss = lambda: int(open("/proc/self/statm").read().split()[1]) * 4096 >> 20
        a = np.ones(1 << 27, np.float32); a[:] = 2; del a
        host_memory.release_free_memory()
        print(host_memory.active() or "none", rss())
    """)
    settings = ["off"] + (["jemalloc"] if _HAS_JEMALLOC else [])
    for setting in settings:
        env = {**_clean_environ(), **_CPU, host_memory.ENV: setting}
        if setting == "jemalloc":
            env.update(host_memory.restart_environ(env))
        active, rss = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                                     text=True, check=True, timeout=120).stdout.split()
        assert active == ("jemalloc" if setting == "jemalloc" else "none")
        assert int(rss) < 300, (setting, rss)          # the 512 MiB array is gone
