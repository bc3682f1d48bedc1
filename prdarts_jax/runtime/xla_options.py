"""XLA:CPU options a search sets before JAX starts its backend.

XLA reads `XLA_FLAGS` once, when the first backend starts, so the search CLI (`search.py`) and
the search-step benchmark call `for_search` first thing. It only appends: an
option the user already named in `XLA_FLAGS` is left as they set it, and
`PRDARTS_XLA_CPU_FLAGS=none` turns ours off (`PRDARTS_XLA_CPU_FLAGS="--a=1 --b=2"` replaces
them). The options are CPU-only (GPU programs ignore them) and were measured with the jaxlib
release series in `TESTED_JAXLIB`; with another one nothing is added, because XLA aborts the
process on an option it does not know.

What they do and what they gave (docs/performance.md, *XLA:CPU options*):
The search's options follow its config's `cpu_library_fusions` (`LIBRARY_FUSIONS`), which
decides the fusions XLA hands to the YNNPACK library. With `dense` depthwise convs, `none` (the
default, `auto`) gave faster steps, less memory and 2–6x faster loads from the persistent cache
than `+eltwise` or XLA's own choice (measured 2026-12-06, quick and paper-scale supernets), for
1–5 s more of cold compile. With the `shift_vjp` formulation (the CPU default) YNNPACK
fusions made steps up to six times slower and quadrupled their memory, and against XLA's own
choice `none` steps as fast or faster (paper-scale heavy pool 3148 -> 3060 ms), compiles no
slower and loads the gradient program from the store in 3.3 s instead of 4.0 (2026-12-06).

`--xla_cpu_prefer_vector_width=512` (XLA:CPU's default is 256-bit vectors) on a CPU with
AVX-512: the retraining step (DL2, C=36, 20 cells, batch 96, 2 cores) 4984 -> 4645 ms, but the
search supernet's cycle-1 step 560 -> 615 ms; so only the retraining CLI opts in
(`for_retraining`).
"""

from __future__ import annotations

import os
import shlex
from collections.abc import MutableMapping

from prdarts_jax.errors import ConfigError

LIBRARY_FUSIONS: dict[str, tuple[str, ...]] = {
    "eltwise": ("--xla_cpu_experimental_ynn_fusion_type=+eltwise",),
    "xla": (),
    "none": ("--xla_cpu_experimental_ynn_fusion_type=",),
}
"""The search's `cpu_library_fusions` setting → its XLA options. `eltwise`: YNNPACK runs the
elementwise fusions; `xla`: XLA's own choice; `none`: no YNNPACK fusions at all. Loading a
program from the persistent cache costs time quadratic in its YNNPACK fusions (each one's
deserialisation looks its instruction up in the whole module), so `none` loads cached programs
fastest: the quick search's heaviest gradient program loads in a fraction of the time
(docs/performance.md, *XLA:CPU options*)."""
FUSION_CHOICES = ("auto", *LIBRARY_FUSIONS)
CPU_FLAGS: tuple[str, ...] = LIBRARY_FUSIONS["none"]
"""What a search sets by default (`auto`)."""
RETRAINING_CPU_FLAGS: tuple[str, ...] = ("--xla_cpu_prefer_vector_width=512",)
CPUINFO = "/proc/cpuinfo"
TESTED_JAXLIB = (0, 10)
ENV = "PRDARTS_XLA_CPU_FLAGS"


def _jaxlib_series() -> tuple[int, ...]:
    try:
        from jaxlib import version
    except ImportError:
        return ()
    return tuple(int(p) for p in version.__version__.split(".")[:2] if p.isdigit())


def _backend_started() -> bool:
    try:
        from jax._src import xla_bridge
        return xla_bridge.backends_are_initialized()
    except (ImportError, AttributeError):
        return False


def _name(flag: str) -> str:
    return flag.split("=", 1)[0].lstrip("-")


def wanted(environ: MutableMapping[str, str] | None = None,
           default: tuple[str, ...] = CPU_FLAGS) -> tuple[str, ...]:
    """The flags prdarts_jax would add: `default`, or `$PRDARTS_XLA_CPU_FLAGS` ("none": none)."""
    environ = os.environ if environ is None else environ
    override = environ.get(ENV)
    if override is None:
        return default
    if override.strip().lower() in ("", "0", "none", "off"):
        return ()
    return tuple(shlex.split(override))


def apply(environ: MutableMapping[str, str] | None = None,
          jaxlib_series: tuple[int, ...] | None = None,
          flags: tuple[str, ...] = CPU_FLAGS) -> tuple[str, ...]:
    """Appends the wanted flags to `XLA_FLAGS` that it does not name yet; returns those added.

    Adds nothing with an untested jaxlib series (XLA aborts on unknown options), except flags
    given explicitly in `$PRDARTS_XLA_CPU_FLAGS`; nothing to this process's environment once a
    JAX backend has started (XLA read its flags then; they would only reach child processes,
    e.g. when a CLI's main runs inside a test).
    """
    environ = os.environ if environ is None else environ
    if environ is os.environ and _backend_started():
        return ()
    series = _jaxlib_series() if jaxlib_series is None else jaxlib_series
    if ENV not in environ and series != TESTED_JAXLIB:
        return ()
    current = shlex.split(environ.get("XLA_FLAGS", ""))
    present = {_name(f) for f in current}
    added = tuple(f for f in wanted(environ, flags) if _name(f) not in present)
    if added:
        environ["XLA_FLAGS"] = " ".join(current + list(added))
    return added


def check_fusions(fusions: str) -> None:
    """A one-line ConfigError for a `cpu_library_fusions` value that is not a choice."""
    if fusions not in FUSION_CHOICES:
        raise ConfigError(f"config.cpu_library_fusions={fusions!r} is unknown; use one of "
                          f"{list(FUSION_CHOICES)}")


def search_flags(fusions: str = "auto") -> tuple[str, ...]:
    """The options of a search whose config asks for `cpu_library_fusions`=`fusions`; `auto`
    is `none`: measured with both depthwise formulations, steps as fast or faster, less
    memory, and faster loads from the caches than `eltwise` or XLA's choice."""
    check_fusions(fusions)
    return LIBRARY_FUSIONS["none" if fusions == "auto" else fusions]


def for_search(environ: MutableMapping[str, str] | None = None,
               fusions: str = "auto") -> tuple[str, ...]:
    """`apply` with `search_flags`: what the search CLI sets before JAX starts."""
    environ = os.environ if environ is None else environ
    flags = search_flags(fusions)
    return apply(environ, flags=flags) if flags else ()


def has_avx512(cpuinfo: str = CPUINFO) -> bool:
    """Whether the CPU has AVX-512 (`avx512f` in /proc/cpuinfo; False where it cannot be read)."""
    try:
        with open(cpuinfo) as f:
            return any(line.startswith("flags") and "avx512f" in line.split() for line in f)
    except OSError:
        return False


def for_retraining(environ: MutableMapping[str, str] | None = None,
                   avx512: bool | None = None,
                   jaxlib_series: tuple[int, ...] | None = None) -> tuple[str, ...]:
    """`apply` with `RETRAINING_CPU_FLAGS` for the retraining CLI (and its benchmark), only on a
    CPU with AVX-512 (None: this machine's); `$PRDARTS_XLA_CPU_FLAGS` overrides as in `apply`."""
    avx512 = has_avx512() if avx512 is None else avx512
    if not avx512:
        return ()
    return apply(environ, jaxlib_series, RETRAINING_CPU_FLAGS)
