"""Keeps XLA:CPU's per-step buffers from being faulted in afresh at every step.

XLA:CPU allocates a program's temporary buffer (GBs for a training step) at every execution and
frees it after. glibc maps an allocation that large afresh and unmaps it on free, so every step
the kernel faults in and zeroes every page again: retraining DL2 (C=36, 8 cells, batch 96) took
1.19 M page faults and 1.9 s of system time per 3.5 s step on 2 cores. Two remedies, picked in
this order by `auto`:

- `jemalloc`: jemalloc (`libjemalloc.so.2`, preloaded) with its decay of freed pages off
  (`dirty_decay_ms:-1,muzzy_decay_ms:-1`) and no separate arena for huge allocations
  (`oversize_threshold:0`), so a freed step buffer stays mapped and the next step reuses it:
  no faults at all after the first step, 1.86 s per step in the example above, the same peak
  memory; a search step at batch 64 1.16 s instead of 1.3-2.3 s.
- `huge_pages`: glibc >= 2.35 asked for transparent huge pages on what it maps (the tunable
  `glibc.malloc.hugetlb=1`; the kernel's huge pages in `madvise` mode): 2.6 k faults, 0.3 s of
  system time, 2.04-2.35 s per step. The pages still go back to the kernel at every step, and on
  a VM whose balloon reports free pages to the host (Firecracker, here) touching them again
  can cost seconds.

Both act only when a process starts, so the CLIs (`python -m prdarts_jax.search`, `.train`,
`.evaluate`) and the step benchmarks restart themselves once, first thing (`restart`): same
interpreter, arguments and environment, plus `LD_PRELOAD`/`MALLOC_CONF` or `GLIBC_TUNABLES`.
What the user set already (a preloaded jemalloc, a `glibc.malloc.hugetlb` tunable) is left alone;
child processes inherit the setting.

`PRDARTS_HOST_MEMORY`: `auto` (default: only where JAX will run on the CPU — `JAX_PLATFORMS`
decides when set, otherwise no accelerator plugin may be installed; jemalloc where installed,
else huge pages where glibc acts on the tunable), `jemalloc` or `huge_pages` (that one, with an
accelerator too), `off`. `PRDARTS_JEMALLOC` names the library when the loader does not find it
(a conda environment's, say). The older `PRDARTS_HUGE_PAGES` (0, 1, auto) is still read when
`PRDARTS_HOST_MEMORY` is unset.

Tried and dropped: keeping freed memory in glibc's heap (mallopt: one arena, no mmap, no trim)
was as fast, but the heap fragmented around XLA's aligned allocations and grew to three times
the step's memory within a dozen steps; glibc's per-thread arenas map large blocks whatever
`mmap_max` says.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
import sys
from collections.abc import Mapping

ENV = "PRDARTS_HOST_MEMORY"
LEGACY_ENV = "PRDARTS_HUGE_PAGES"
JEMALLOC_ENV = "PRDARTS_JEMALLOC"
TUNABLE = "glibc.malloc.hugetlb=1"
JEMALLOC_CONF = "narenas:1,oversize_threshold:0,dirty_decay_ms:-1,muzzy_decay_ms:-1"
GLIBC_MIN = (2, 35)
THP_ENABLED = "/sys/kernel/mm/transparent_hugepage/enabled"
INSTALL_HINT = "install it (Debian/Ubuntu: apt install libjemalloc2) or set PRDARTS_JEMALLOC"
_MARKER = "PRDARTS_HOST_MEMORY_RESTARTED"
_MODES = {"auto": "auto", "": "auto", "jemalloc": "jemalloc", "huge_pages": "huge_pages",
          "off": "off", "0": "off", "false": "off", "no": "off"}
_LEGACY_MODES = {"auto": "auto", "": "auto", "1": "huge_pages", "on": "huge_pages",
                 "true": "huge_pages", "0": "off", "off": "off", "false": "off"}
_ACCELERATOR_MODULES = ("libtpu",)
_ARENAS_ALL = 4096  # jemalloc's MALLCTL_ARENAS_ALL


def mode(environ: Mapping[str, str] | None = None) -> str:
    """`auto`, `jemalloc`, `huge_pages` or `off`, from `$PRDARTS_HOST_MEMORY` (or the older
    `$PRDARTS_HUGE_PAGES`)."""
    environ = os.environ if environ is None else environ
    if ENV not in environ and LEGACY_ENV in environ:
        value = environ[LEGACY_ENV].strip().lower()
        if value not in _LEGACY_MODES:
            raise ValueError(f"{LEGACY_ENV}={environ[LEGACY_ENV]!r} is not understood: use "
                             f"{ENV}=auto, jemalloc, huge_pages or off")
        return _LEGACY_MODES[value]
    value = environ.get(ENV, "auto").strip().lower()
    if value not in _MODES:
        raise ValueError(f"{ENV}={environ[ENV]!r} is not understood: use auto, jemalloc, "
                         "huge_pages or off")
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


def find_jemalloc(environ: Mapping[str, str] | None = None) -> str | None:
    """What to preload: `$PRDARTS_JEMALLOC` (must exist), else the loader's jemalloc, else None.

    Linux only: elsewhere `LD_PRELOAD` does not apply.
    """
    environ = os.environ if environ is None else environ
    path = environ.get(JEMALLOC_ENV, "")
    if path:
        if not os.path.isfile(path):
            raise ValueError(f"{JEMALLOC_ENV}={path!r} is not a file: point it at "
                             "libjemalloc.so.2 or unset it")
        return path
    if platform.system() != "Linux":
        return None
    return ctypes.util.find_library("jemalloc")


def _glibc_acts_on_tunable(glibc: tuple[int, ...] | None, thp: str | None) -> bool:
    """glibc >= 2.35 with the kernel's huge pages in `madvise` mode (None: this machine's)."""
    glibc = glibc_version() if glibc is None else glibc
    thp = thp_mode() if thp is None else thp
    return bool(glibc) and glibc >= GLIBC_MIN and thp == "madvise"


def _users_own(environ: Mapping[str, str]) -> bool:
    return ("jemalloc" in environ.get("LD_PRELOAD", "")
            or "glibc.malloc.hugetlb" in environ.get("GLIBC_TUNABLES", ""))


def _with_jemalloc(environ: Mapping[str, str], lib: str) -> dict[str, str]:
    preload = environ.get("LD_PRELOAD", "")
    return {**environ, "LD_PRELOAD": f"{lib}:{preload}" if preload else lib,
            "MALLOC_CONF": environ.get("MALLOC_CONF") or JEMALLOC_CONF, _MARKER: "jemalloc"}


def _with_huge_pages(environ: Mapping[str, str]) -> dict[str, str]:
    tunables = environ.get("GLIBC_TUNABLES", "")
    return {**environ, "GLIBC_TUNABLES": f"{tunables}:{TUNABLE}" if tunables else TUNABLE,
            _MARKER: "huge_pages"}


_NOT_FOUND = object()


def restart_environ(environ: Mapping[str, str] | None = None,
                    glibc: tuple[int, ...] | None = None, thp: str | None = None,
                    jemalloc: str | None | object = _NOT_FOUND) -> dict[str, str] | None:
    """The environment to restart with, or None when a restart would not help or is unwanted.

    `glibc`, `thp` and `jemalloc` (the library to preload) default to this machine's. Raises
    ValueError for a bad setting and for `jemalloc` asked for but not found.
    """
    environ = os.environ if environ is None else environ
    wanted = mode(environ)
    if (wanted == "off" or _MARKER in environ or _users_own(environ)
            or (wanted == "auto" and accelerator_expected(environ))):
        return None
    if wanted in ("auto", "jemalloc"):
        lib = find_jemalloc(environ) if jemalloc is _NOT_FOUND else jemalloc
        if lib:
            return _with_jemalloc(environ, lib)
        if wanted == "jemalloc":
            raise ValueError(f"{ENV}=jemalloc but libjemalloc was not found: {INSTALL_HINT} "
                             "to its path")
    if _glibc_acts_on_tunable(glibc, thp):
        return _with_huge_pages(environ)
    return None


def jemalloc_loaded(maps: str = "/proc/self/maps") -> bool:
    """Whether jemalloc is mapped into this process (Linux; False where that cannot be read)."""
    try:
        with open(maps) as f:
            return any("jemalloc" in line for line in f)
    except OSError:
        return False


def release_free_memory() -> None:
    """Hands memory the allocator keeps free back to the kernel (jemalloc: purges every arena;
    glibc: `malloc_trim`), so that a resident-memory high-water mark measured next counts
    only what is allocated from then on. Does nothing where neither applies."""
    libc = ctypes.CDLL(None)
    if jemalloc_loaded():
        mallctl = getattr(libc, "mallctl", None)
        if mallctl is not None:
            mallctl(f"arena.{_ARENAS_ALL}.purge".encode(), None, None, None, ctypes.c_size_t(0))
            return
    trim = getattr(libc, "malloc_trim", None)
    if trim is not None:
        trim(0)


def huge_pages_on(environ: Mapping[str, str] | None = None,
                  glibc: tuple[int, ...] | None = None, thp: str | None = None) -> bool:
    """Whether this process was started with glibc's huge-page tunable and glibc acts on it."""
    environ = os.environ if environ is None else environ
    return (TUNABLE in environ.get("GLIBC_TUNABLES", "").split(":")
            and _glibc_acts_on_tunable(glibc, thp))


def active(environ: Mapping[str, str] | None = None) -> str:
    """The remedy this process runs with: `jemalloc`, `huge_pages`, or "" (glibc's defaults)."""
    if jemalloc_loaded():
        return "jemalloc"
    return "huge_pages" if huge_pages_on(environ) else ""


def describe(environ: Mapping[str, str] | None = None) -> str:
    """A log line saying which remedy is on and who set it ("" when none is)."""
    environ = os.environ if environ is None else environ
    remedy = active(environ)
    if not remedy:
        return ""
    how = (f"chosen by prdarts_jax; {ENV}=off turns it off" if environ.get(_MARKER) == remedy
           else "set in your environment, not by prdarts_jax")
    what = {"jemalloc": "jemalloc, which keeps freed step buffers mapped for the next step",
            "huge_pages": "glibc with transparent huge pages for large buffers"}[remedy]
    return f"host memory: {what} ({how})"


def _restartable() -> bool:
    """A program read from a file, `-m` or `-c`, not a REPL, stdin or a debugger session."""
    return (bool(sys.executable) and not sys.flags.interactive and not hasattr(sys, "ps1")
            and sys.argv[0] not in ("", "-") and sys.gettrace() is None)


def restart() -> None:
    """Re-executes this process with jemalloc or glibc's huge pages when that helps (module
    docstring).

    Call it first in a `__main__` block, before any work: the process is replaced. The
    restarted process finds the setting and goes on. Nothing happens in a REPL, a program read
    from stdin or under a debugger; if the exec fails, the process goes on without. A bad
    setting exits with one line.
    """
    try:
        environ = restart_environ()
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
        print(f"warning: could not restart with {environ[_MARKER]} ({err}); going on without",
              file=sys.stderr)
