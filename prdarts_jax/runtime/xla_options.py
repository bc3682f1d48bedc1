"""XLA:CPU options a search sets before JAX starts its backend.

XLA reads `XLA_FLAGS` once, when the first backend starts, so the search CLI (`search.py`, via
`for_search`) and the search-step benchmark call `apply` first thing. It only appends: an
option the user already named in `XLA_FLAGS` is left as they set it, and `PRDARTS_XLA_CPU_FLAGS=none` turns ours off
(`PRDARTS_XLA_CPU_FLAGS="--a=1 --b=2"` replaces them). The options are CPU-only (GPU programs
ignore them) and were measured with the jaxlib release series in `TESTED_JAXLIB`; with another
one nothing is added, because XLA aborts the process on an option it does not know.

What they do and what they gave (README, *Benchmarks against a PyTorch reference*):
`--xla_cpu_experimental_ynn_fusion_type=+eltwise` lets XLA hand elementwise fusions to YNNPACK,
which runs them on all cores: a supernet step with dense depthwise convs took 9–18 % less time
on 2 cores, with the same losses to float32 rounding. With the `shift_vjp` formulation (the CPU
default, of searches too) it made steps up to six times slower and quadrupled their memory, so
only a search told to use `dense` depthwise convs opts in (`for_search`).

`--xla_cpu_prefer_vector_width=512` (XLA:CPU's default is 256-bit vectors) on a CPU with
AVX-512: the retraining step (DL2, C=36, 20 cells, batch 96, 2 cores) 4984 -> 4645 ms, but the
search supernet's cycle-1 step 560 -> 615 ms; so only the retraining CLI opts in
(`for_retraining`).
"""

from __future__ import annotations

import os
import shlex
from collections.abc import MutableMapping

CPU_FLAGS: tuple[str, ...] = ("--xla_cpu_experimental_ynn_fusion_type=+eltwise",)
RETRAINING_CPU_FLAGS: tuple[str, ...] = ("--xla_cpu_prefer_vector_width=512",)
CPUINFO = "/proc/cpuinfo"
TESTED_JAXLIB = (0, 10)
ENV = "PRDARTS_XLA_CPU_FLAGS"
DEPTHWISE_ENV = "PRDARTS_DEPTHWISE_IMPL"


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


def for_search(depthwise_impl: str | None,
               environ: MutableMapping[str, str] | None = None) -> tuple[str, ...]:
    """`apply` for a search whose config asks for `depthwise_impl` ("" or None: the backend's
    default, `shift_vjp` on a CPU): the options suit the `dense` depthwise formulation only."""
    environ = os.environ if environ is None else environ
    impl = depthwise_impl or environ.get(DEPTHWISE_ENV, "")
    return apply(environ) if impl == "dense" else ()


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
