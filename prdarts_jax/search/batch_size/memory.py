"""Memory probes for the variable batch size: the peak memory of a step as a fraction of a budget.

One interface, two sources, chosen per backend by `make_probe`:

- `DeviceStatsProbe` reads the allocator's counters (`device.memory_stats()`, GPU and TPU). The
  counters hold one lifetime peak and JAX offers no way to reset it, so a reading is the peak
  itself when it set a new record since the previous reading (then it is this interval's peak),
  and otherwise the bytes in use now plus the transient bytes (temporaries and outputs) of the
  step's compiled programs, when given.
- `CompiledMemoryProbe` asks XLA how much the step's compiled programs need
  (`Compiled.memory_analysis()`), relative to a configured budget. It works on every backend,
  the CPU included, where `memory_stats()` is None.

Both take the compiled programs of one step: `jitted.trace(*args).lower().compile()` (on jax
0.10 the same executable a plain call of `jitted` then uses, so obtaining it costs no compile).
"""

from __future__ import annotations

import os
from typing import Any, Protocol, Sequence

import jax

CPU_BUDGET_FRACTION = 0.5
"""Default budget on a CPU: this fraction of the machine's (or container's) memory."""


class MemoryProbe(Protocol):
    """Reads the peak memory of a step as a fraction of the budget (None: no reading)."""

    name: str

    def usage(self, compiled: Sequence[Any] = ()) -> float | None: ...

    def reset(self) -> None:
        """Forget earlier readings (call at a cycle start)."""


def compiled_bytes(compiled: Any) -> int:
    """Device bytes one compiled program needs while it runs, from XLA's buffer assignment.

    Arguments + outputs − outputs aliased to (donated) arguments + temporaries + code. Raises
    ValueError where the backend gives no memory analysis.
    """
    m = compiled.memory_analysis()
    if m is None:
        raise ValueError("this backend gives no memory analysis for compiled programs")
    return int(m.argument_size_in_bytes + m.output_size_in_bytes - m.alias_size_in_bytes
               + m.temp_size_in_bytes + m.generated_code_size_in_bytes)


def transient_bytes(compiled: Any) -> int:
    """Bytes a program allocates on top of its (already resident) arguments."""
    m = compiled.memory_analysis()
    if m is None:
        raise ValueError("this backend gives no memory analysis for compiled programs")
    return int(m.output_size_in_bytes - m.alias_size_in_bytes + m.temp_size_in_bytes)


def usage_of(compiled: Sequence[Any], budget: int) -> float:
    """Σ compiled_bytes / budget: every program counted in full, shared arguments included.

    An upper bound for programs that run one after another (the peak is nearer the max).
    """
    if budget <= 0:
        raise ValueError(f"memory budget must be > 0 bytes, got {budget}")
    return sum(compiled_bytes(c) for c in compiled) / budget


def system_memory_bytes() -> int:
    """Physical memory, or the container's (cgroup v2/v1) limit when lower."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as f:
                text = f.read().strip()
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text))
    return total


def default_budget(fraction: float = CPU_BUDGET_FRACTION) -> int:
    return int(fraction * system_memory_bytes())


class CompiledMemoryProbe:
    """XLA's own accounting of the compiled programs, relative to `budget` bytes."""

    name = "compiled"

    def __init__(self, budget: int | None = None):
        self.budget = default_budget() if budget is None else int(budget)
        if self.budget <= 0:
            raise ValueError(f"memory budget must be > 0 bytes, got {budget}")

    def usage(self, compiled: Sequence[Any] = ()) -> float | None:
        if not compiled:
            return None
        try:
            return usage_of(compiled, self.budget)
        except ValueError:
            return None

    def reset(self) -> None:
        pass


def device_stats(device: Any = None) -> dict[str, int] | None:
    """The allocator counters of `device` (default: the first), None where there are none."""
    device = jax.devices()[0] if device is None else device
    try:
        stats = device.memory_stats()
    except (NotImplementedError, RuntimeError):
        return None
    if not stats or "bytes_limit" not in stats or "peak_bytes_in_use" not in stats:
        return None
    return stats


class DeviceStatsProbe:
    """The device allocator's counters; `budget` (bytes) lowers the device's own limit."""

    name = "device"

    def __init__(self, device: Any = None, budget: int | None = None):
        self.device = jax.devices()[0] if device is None else device
        self.budget = budget
        self._peak = 0
        self.reset()

    @property
    def available(self) -> bool:
        return device_stats(self.device) is not None

    def reset(self) -> None:
        """Readings from now on ignore peaks reached before (they may be another structure's)."""
        stats = device_stats(self.device)
        self._peak = stats["peak_bytes_in_use"] if stats else 0

    def usage(self, compiled: Sequence[Any] = ()) -> float | None:
        stats = device_stats(self.device)
        if stats is None:
            return None
        limit = stats["bytes_limit"] if self.budget is None else min(stats["bytes_limit"],
                                                                      self.budget)
        peak = stats["peak_bytes_in_use"]
        if peak > self._peak:
            self._peak = peak
            return peak / limit
        try:
            extra = sum(transient_bytes(c) for c in compiled)
        except ValueError:
            extra = 0
        return (stats.get("bytes_in_use", peak) + extra) / limit


def make_probe(backend: str | None = None, budget_bytes: int | None = None) -> MemoryProbe:
    """Device counters where the backend's first device has them, else XLA's compiled analysis.

    `budget_bytes`: the memory allowed (None: the device's limit; on a CPU half the memory).
    """
    device = jax.devices(backend)[0]
    probe = DeviceStatsProbe(device, budget_bytes)
    if probe.available:
        return probe
    return CompiledMemoryProbe(budget_bytes)


def memory_in_use() -> dict[str, Any]:
    """What the epoch records report as memory in use: the device allocator's peak where it has
    counters (GPU/TPU), else the process's peak resident memory (CPU)."""
    stats = device_stats()
    if stats is not None:
        return {"memory_bytes": int(stats["peak_bytes_in_use"]), "memory_source": "device_peak"}
    import resource
    return {"memory_bytes": int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024,
            "memory_source": "process_peak_rss"}
