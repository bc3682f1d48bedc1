"""Backs XLA:CPU's large per-step buffers with transparent huge pages.

XLA:CPU allocates a program's temporary buffer (GBs for a training step) at every execution and
frees it after. glibc maps an allocation that large afresh and unmaps it on free, so every step
the kernel faults in and zeroes every 4 KiB page again: retraining DL2 (C=36, 8 cells, batch 96)
took 1.19 M page faults and 1.9 s of system time per 3.5 s step on 2 cores. glibc ≥ 2.35 can
ask for transparent huge pages on what it maps (the tunable `glibc.malloc.hugetlb=1`): 2.6 k
faults, 0.3 s of system time, 2.35 s per step, the same memory.

glibc reads tunables only when a process starts, so the CLIs (`python -m prdarts_jax.search`,
`.train`, `.evaluate`) and the step benchmarks restart themselves once, first thing, with the
tunable added to `GLIBC_TUNABLES` (`restart_with_huge_pages`): same interpreter, arguments and
environment otherwise. A tunable the user set already is left alone.

`PRDARTS_HUGE_PAGES`: `auto` (default: only where JAX will run on the CPU — `JAX_PLATFORMS`
decides when set, otherwise no accelerator plugin may be installed), `1` (also with an
accelerator), `0` (never). Either way only where the kernel's transparent huge pages are in
`madvise` mode: glibc (2.36 here) acts on the tunable only there, and in `always` mode the
kernel backs large mappings with huge pages by itself. Child processes inherit the tunable.

Tried first and dropped: keeping freed memory in glibc's heap (mallopt: one arena, no mmap, no
trim) was as fast, but the heap fragmented around XLA's aligned allocations and grew to three
times the step's memory within a dozen steps.
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Mapping

ENV = "PRDARTS_HUGE_PAGES"
TUNABLE = "glibc.malloc.hugetlb=1"
GLIBC_MIN = (2, 35)
THP_ENABLED = "/sys/kernel/mm/transparent_hugepage/enabled"
_MARKER = "PRDARTS_HUGE_PAGES_RESTARTED"
_MODES = {"auto": "auto", "": "auto", "1": "on", "on": "on", "true": "on",
          "0": "off", "off": "off", "false": "off"}
_ACCELERATOR_MODULES = ("libtpu",)


def mode(environ: Mapping[str, str] | None = None) -> str:
    """`auto`, `on` or `off`, from `$PRDARTS_HUGE_PAGES`."""
    environ = os.environ if environ is None else environ
    value = environ.get(ENV, "auto").strip().lower()
    if value not in _MODES:
        raise ValueError(f"{ENV}={environ[ENV]!r} is not understood: use auto, 1 or 0")
    return _MODES[value]


def accelerator_expected(environ: Mapping[str, str] | None = None) -> bool:
    """Whether JAX will pick a non-CPU backend, decided without starting one.

    `JAX_PLATFORMS` decides when set; otherwise an installed accelerator plugin (a `jax_plugins`
    module or entry point: CUDA, ROCm, …) or libtpu counts as one.
    """
    environ = os.environ if environ is None else environ
    platforms = [p.strip() for p in environ.get("JAX_PLATFORMS", "").split(",") if p.strip()]
    if platforms:
        return any(p != "cpu" for p in platforms)
    import importlib.metadata
    import importlib.util
    import pkgutil
    try:
        import jax_plugins
        if any(True for _ in pkgutil.iter_modules(jax_plugins.__path__)):
            return True
    except ImportError:
        pass
    if importlib.metadata.entry_points(group="jax_plugins"):
        return True
    return any(importlib.util.find_spec(m) is not None for m in _ACCELERATOR_MODULES)


def glibc_version() -> tuple[int, ...]:
    """glibc's version on Linux, () elsewhere (musl, macOS, Windows)."""
    if platform.system() != "Linux":
        return ()
    lib, version = platform.libc_ver()
    if lib != "glibc":
        return ()
    return tuple(int(p) for p in version.split(".") if p.isdigit())


def thp_mode(path: str = THP_ENABLED) -> str:
    """The kernel's transparent-huge-page mode (`always`, `madvise`, `never`; "" if unknown)."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return ""
    start, end = text.find("["), text.find("]")
    return text[start + 1:end] if 0 <= start < end else ""


def _glibc_acts_on_tunable(glibc: tuple[int, ...] | None, thp: str | None) -> bool:
    """glibc >= 2.35 with the kernel's huge pages in `madvise` mode (None: this machine's)."""
    glibc = glibc_version() if glibc is None else glibc
    thp = thp_mode() if thp is None else thp
    return bool(glibc) and glibc >= GLIBC_MIN and thp == "madvise"


def huge_page_environ(environ: Mapping[str, str] | None = None,
                      glibc: tuple[int, ...] | None = None,
                      thp: str | None = None) -> dict[str, str] | None:
    """The environment to restart with, or None when a restart would not help or is unwanted."""
    environ = os.environ if environ is None else environ
    wanted = mode(environ)
    tunables = environ.get("GLIBC_TUNABLES", "")
    if (wanted == "off" or _MARKER in environ or "glibc.malloc.hugetlb" in tunables
            or (wanted == "auto" and accelerator_expected(environ))):
        return None
    if not _glibc_acts_on_tunable(glibc, thp):
        return None
    return {**environ, "GLIBC_TUNABLES": f"{tunables}:{TUNABLE}" if tunables else TUNABLE,
            _MARKER: "1"}


def huge_pages_on(environ: Mapping[str, str] | None = None,
                  glibc: tuple[int, ...] | None = None, thp: str | None = None) -> bool:
    """Whether this process was started with glibc's huge-page tunable and glibc acts on it."""
    environ = os.environ if environ is None else environ
    return (TUNABLE in environ.get("GLIBC_TUNABLES", "").split(":")
            and _glibc_acts_on_tunable(glibc, thp))


def describe(environ: Mapping[str, str] | None = None) -> str:
    """A log line saying huge pages are on and who set them ("" when they are off)."""
    environ = os.environ if environ is None else environ
    if not huge_pages_on(environ):
        return ""
    how = (f"{ENV}=0: off" if environ.get(_MARKER) == "1"
           else "set in GLIBC_TUNABLES, not by prdarts_jax")
    return f"host memory: glibc maps large buffers with transparent huge pages ({how})"


def _restartable() -> bool:
    """A program read from a file, `-m` or `-c`, not a REPL, stdin or a debugger session."""
    return (bool(sys.executable) and not sys.flags.interactive and not hasattr(sys, "ps1")
            and sys.argv[0] not in ("", "-") and sys.gettrace() is None)


def restart_with_huge_pages() -> None:
    """Re-executes this process with `glibc.malloc.hugetlb=1` when that helps (module docstring).

    Call it first in a `__main__` block, before any work: the process is replaced. The
    restarted process finds the tunable set and goes on. Nothing happens in a REPL, a program
    read from stdin or under a debugger; if the exec fails, the process goes on without.
    """
    try:
        environ = huge_page_environ()
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    if environ is None or not _restartable():
        return
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            stream.flush()
    try:
        os.execve(sys.executable, sys.orig_argv, environ)
    except OSError as err:
        print(f"warning: could not restart with huge pages ({err}); going on without",
              file=sys.stderr)
