"""Shared parts of the side-by-side benchmarks: timing orders, memory, parity, tables.

Timing: each framework's step is a callable that runs one step and waits for its results
(`jax.block_until_ready`, `torch.cuda.synchronize`). Two orders (`--order`): `interleaved`
(after `warmup` calls of each, A B A B …, so that a change of machine load hits both alike) and
`blocks` (`warmup` untimed then `reps` timed calls of A, then the same of B: each framework's
steps follow each other as in a real run, so what one step leaves behind in the process or the
kernel meets the next step of the same framework). The table gives the median, min and max over
the timed calls.

Memory, the same quantity for both frameworks: the bytes resident between steps (weights, BN
statistics, α, optimizer states, the batches) plus the peak of what one step allocates on top.
JAX: XLA's buffer assignment of the compiled programs (exact, every backend). PyTorch: on a GPU
the caching allocator's peak (`torch.cuda.max_memory_allocated`, which includes the resident
bytes); on a CPU the rise of the process's resident-memory high-water mark during one step.

A third order, `processes`, runs each framework in a process of its own (`run_in_processes`:
the same script again, `blocks` order, one framework each) so that each runs with the host
allocator that suits it: JAX with what the CLIs pick (`prdarts_jax.runtime.host_memory`: jemalloc, which
made PyTorch's CPU steps up to 3x slower in the same process), PyTorch with glibc's huge pages
(`process_environ`). Both draw the same weights and batches from the same seed, so the parent
checks parity on the losses the two processes report.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import statistics
import sys
import time
from typing import Any, Callable, Iterable, Iterator, Sequence

MIB = 2 ** 20


def load_average() -> str:
    """`uptime`'s three load averages, e.g. '1.52 0.90 0.41'."""
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def environment(torch_device: str | None = None) -> dict[str, Any]:
    """Versions, devices and threads of both frameworks (torch only if it is timed, on
    `torch_device`, and importable)."""
    import jax

    from prdarts_jax.runtime import host_memory

    env = {"host": platform.node(), "cpus": os.cpu_count(), "python": platform.python_version(),
           "jax": jax.__version__, "jax_backend": jax.default_backend(),
           "jax_device": str(jax.devices()[0].device_kind), "load": load_average(),
           "xla_flags": repr(os.environ.get("XLA_FLAGS", "")),
           "host_memory": host_memory.active() or "glibc defaults"}
    if torch_device is None:
        return env
    try:
        import torch
    except ImportError:
        return env
    env.update(torch=torch.__version__, torch_threads=torch.get_num_threads(),
               torch_device=torch_device)
    if torch_device and torch_device.startswith("cuda"):
        env["torch_device_name"] = torch.cuda.get_device_name(torch_device)
    return env


def _timed_call(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def interleaved(steps: dict[str, Callable[[], Any]], reps: int, warmup: int
                ) -> dict[str, list[float]]:
    """Seconds per call of each step: `warmup` untimed calls each, then `reps` rounds in which
    every step runs once, in the given order."""
    for _ in range(warmup):
        for fn in steps.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(reps):
        for name, fn in steps.items():
            times[name].append(_timed_call(fn))
    return times


def blocks(steps: dict[str, Callable[[], Any]], reps: int, warmup: int
           ) -> dict[str, list[float]]:
    """Seconds per call of each step: one step after the other, `warmup` untimed and then
    `reps` timed calls of it in a row."""
    times: dict[str, list[float]] = {}
    for name, fn in steps.items():
        for _ in range(warmup):
            fn()
        times[name] = [_timed_call(fn) for _ in range(reps)]
    return times


_TIMINGS = {"interleaved": interleaved, "blocks": blocks}
ORDERS = tuple(_TIMINGS)
PROCESSES = "processes"
FRAMEWORKS = ("both", "jax", "torch")


def timed(steps: dict[str, Callable[[], Any]], reps: int, warmup: int, order: str
          ) -> dict[str, list[float]]:
    """`interleaved` or `blocks` timing (module docstring)."""
    if order not in _TIMINGS:
        raise ValueError(f"unknown timing order {order!r}; use one of {', '.join(ORDERS)}")
    return _TIMINGS[order](steps, reps, warmup)


@dataclasses.dataclass
class Row:
    """One framework's result for one configuration."""

    config: str
    framework: str
    times: list[float]
    images_per_step: int
    memory_bytes: int | None = None
    compile_seconds: float | None = None
    note: str = ""
    losses: tuple[float, ...] = ()

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    def to_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "median": self.median,
                "images_per_second": self.images_per_step / self.median}


def table(rows: Sequence[Row], reference: str = "PyTorch eager") -> str:
    """Markdown: one line per (configuration, framework); ratio = median time / the median of
    `reference` in the same configuration (below 1: faster than it)."""
    ref = {r.config: r.median for r in rows if r.framework == reference}
    lines = ["| config | framework | median ms | min ms | max ms | time / " + reference
             + " | images/s | peak MiB | compile s |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        ratio = f"{r.median / ref[r.config]:.2f}" if r.config in ref else "—"
        mem = f"{r.memory_bytes / MIB:.0f}" if r.memory_bytes else "—"
        comp = f"{r.compile_seconds:.1f}" if r.compile_seconds is not None else "—"
        lines.append(
            f"| {r.config} | {r.framework}{' (' + r.note + ')' if r.note else ''} "
            f"| {1e3 * r.median:.1f} | {1e3 * min(r.times):.1f} | {1e3 * max(r.times):.1f} "
            f"| {ratio} | {r.images_per_step / r.median:.1f} | {mem} | {comp} |")
    return "\n".join(lines)


def write_json(path: str, env: dict, rows: Iterable[Row], extra: dict | None = None) -> None:
    with open(path, "w") as f:
        json.dump({"environment": env, "rows": [r.to_json() for r in rows], **(extra or {})},
                  f, indent=1)


@dataclasses.dataclass
class Contender:
    """One framework's step for one configuration.

    `run` takes one step, waits for it and returns its losses as floats; `memory` gives the
    resident + peak bytes (called after the first steps, when optimizer states exist);
    `compile_seconds` is known ahead (JAX's AOT compile) or, with `compiles_on_first_call`
    (torch.compile), taken as the first call's time less a steady step.
    """

    run: Callable[[], tuple[float, ...]]
    memory: Callable[[], int | None]
    compile_seconds: float | None = None
    compiles_on_first_call: bool = False


def compare(config: str, contenders: dict[str, Contender], *, reps: int, warmup: int,
            images_per_step: int, tolerances: tuple[float, float],
            reference: str = "PyTorch eager", order: str = "interleaved"
            ) -> tuple[list[Row], dict]:
    """Parity, memory and timing (`order`, see `timed`) of contenders that start from the same
    state.

    Parity: each contender takes two steps on the same batches; the first step's first loss
    (same weights) must agree with `reference`'s to `tolerances[0]` (relative), its other
    losses and the second step's first loss (after optimizer updates) to `tolerances[1]`.
    These two steps count towards `warmup`; in `blocks` order each block still starts with at
    least one untimed step (the first after another framework's block).
    """
    losses, first_call = {}, {}
    for name, c in contenders.items():
        t0 = time.perf_counter()
        first = c.run()
        first_call[name] = time.perf_counter() - t0
        losses[name] = (*first, c.run()[0])
    parity = check_parity(config, losses, tolerances, reference)
    memory = {name: c.memory() for name, c in contenders.items()}
    times = timed({n: c.run for n, c in contenders.items()}, reps,
                  max(warmup - 2, 0 if order == "interleaved" else 1), order)
    rows = []
    for name, c in contenders.items():
        compile_s = c.compile_seconds
        if c.compiles_on_first_call:
            compile_s = first_call[name] - statistics.median(times[name])
        rows.append(Row(config, name, times[name], images_per_step, memory[name], compile_s,
                        losses=losses[name]))
    return rows, parity


def check_parity(config: str, losses: dict[str, tuple[float, ...]],
                 tolerances: tuple[float, float], reference: str = "PyTorch eager"
                 ) -> dict[str, dict]:
    """Compares each contender's parity losses with `reference`'s and prints the verdicts (see
    `compare`); {} when `reference` was not run."""
    if reference not in losses:
        return {}
    parity = {}
    base = losses[reference]
    for name, ls in losses.items():
        if name == reference:
            continue
        d_first = rel_diff(ls[0], base[0])
        d_next = max(rel_diff(a, b) for a, b in zip(ls[1:], base[1:]))
        parity[name] = {"losses": ls, "reference_losses": base, "first": d_first,
                        "next": d_next}
        print(f"  {config}: {name} vs {reference}: losses {ls[0]:.6f} / {base[0]:.6f}; "
              + check("first loss, relative difference", d_first, tolerances[0]) + "; "
              + check("next losses", d_next, tolerances[1]), flush=True)
    return parity


# ----------------------------------------------------------------------------- torch helpers


def torch_tensors_bytes(tensors: Iterable[Any]) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def torch_optimizer_bytes(opt: Any) -> int:
    import torch

    return sum(v.numel() * v.element_size() for state in opt.state.values()
               for v in state.values() if isinstance(v, torch.Tensor))


def _proc_status_bytes(*keys: str) -> dict[str, int]:
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in keys:
                out[key] = int(value.split()[0]) * 1024
    return out


def torch_peak_bytes(step: Callable[[], Any], device: str, resident: int) -> int | None:
    """Resident bytes plus the peak that one call of `step` allocates on top of them.

    CUDA: the allocator's own peak (resident included). CPU: the process's resident-memory
    high-water mark during the call (reset through /proc/self/clear_refs, after returning freed
    heap memory to the system) less the resident memory before it, added to `resident`. (The
    profiler's allocation trace gives the same on small networks but takes minutes to read at
    paper scale.) None where /proc does not allow this.
    """
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        step()
        torch.cuda.synchronize(device)
        return int(torch.cuda.max_memory_allocated(device))
    import gc

    from prdarts_jax.runtime import host_memory

    try:
        gc.collect()
        host_memory.release_free_memory()
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")                    # resets VmHWM to the current VmRSS
        before = _proc_status_bytes("VmRSS")["VmRSS"]
        step()
        peak = _proc_status_bytes("VmHWM")["VmHWM"]
    except (OSError, KeyError, AttributeError):
        return None
    return resident + max(peak - before, 0)


def int_list(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Within the block PyTorch uses `n` intra-op threads (0: leave the setting alone)."""
    import torch

    if not n:
        yield
        return
    saved = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


def torch_sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def rel_diff(a: float, b: float) -> float:
    return abs(a - b) / max(abs(a), abs(b), 1e-12)


def check(name: str, value: float, tol: float) -> str:
    """A one-line verdict; raises if `value` exceeds `tol`."""
    line = f"{name}: {value:.2e} (tolerance {tol:.0e})"
    if not value <= tol:
        raise AssertionError(f"parity check failed: {line}")
    return line


def torch_contenders(make: Callable[..., Contender], args: argparse.Namespace
                     ) -> dict[str, Contender]:
    """The PyTorch contenders `add_torch_args`' options ask for: eager, with `--torch-compile`
    compiled too, and eager at each `--torch-extra-threads` count.
    `make(compile_model, threads=0)` builds one. Empty with `--frameworks jax`."""
    if args.frameworks == "jax":
        return {}
    out = {"PyTorch eager": make(False)}
    if args.torch_compile:
        out["PyTorch compile"] = make(True)
    for threads in int_list(args.torch_extra_threads):
        out[f"PyTorch eager {threads} thread(s)"] = make(False, threads)
    return out


def add_torch_args(ap: argparse.ArgumentParser, device_help: str) -> None:
    """The options both step benchmarks share: PyTorch's side, the seed, the JSON output."""
    ap.add_argument("--torch-compile", action="store_true", help="also time torch.compile")
    ap.add_argument("--torch-threads", type=int, default=0, help="0: PyTorch's default")
    ap.add_argument("--torch-extra-threads", default="",
                    help="also time PyTorch eager with these thread counts, e.g. 1")
    ap.add_argument("--device", default="auto", help=device_help)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default="", help="also write the results here")
    ap.add_argument("--order", choices=(*ORDERS, PROCESSES), default="interleaved",
                    help="timed steps A B A B … (interleaved), all of A, then all of B "
                         "(blocks, as in a real run), or blocks with each framework in a "
                         "process of its own, JAX with the CLIs' host allocator and PyTorch "
                         "with glibc's huge pages (processes)")
    ap.add_argument("--frameworks", choices=FRAMEWORKS, default="both",
                    help="time only these (what --order processes runs in each process; "
                         "parity needs both)")
    ap.add_argument("--malloc-defaults", action="store_true",
                    help="do not restart with jemalloc or glibc's huge pages, as the CLIs do on "
                         "a CPU (prdarts_jax.runtime.host_memory); either holds for both frameworks")


def restart_host_memory(argv: Sequence[str] | None = None) -> None:
    """What the CLIs do first (`host_memory.restart`), unless `--malloc-defaults` is among the
    arguments or `--order processes` leaves the choice to the processes it starts."""
    from prdarts_jax.runtime import host_memory

    argv = sys.argv[1:] if argv is None else argv
    if "--malloc-defaults" not in argv and _order(argv) != PROCESSES:
        host_memory.restart()


def _order(argv: Sequence[str]) -> str | None:
    """The last `--order` value in `argv` (argparse's rule), read before argparse runs."""
    order = None
    for i, arg in enumerate(argv):
        if arg == "--order" and i + 1 < len(argv):
            order = argv[i + 1]
        elif arg.startswith("--order="):
            order = arg.split("=", 1)[1]
    return order


def process_argv(argv: Sequence[str], framework: str, json_path: str) -> list[str]:
    """The arguments of one framework's process under `--order processes`: the user's, then
    overrides (argparse keeps the last value): blocks order, that framework only, its JSON."""
    return [*argv, "--order", "blocks", "--frameworks", framework, "--json", json_path]


def process_environ(environ: dict[str, str], framework: str) -> dict[str, str]:
    """The environment of one framework's process: JAX's as the user's (the CLIs' choice of
    host allocator applies); PyTorch's with glibc's huge pages where glibc acts on them, the
    fastest of the settings we tried for it (paper-scale retraining step: 8.4 s against 10.1 s
    with glibc's defaults; jemalloc slowed it down). `--malloc-defaults` still holds for both."""
    from prdarts_jax.runtime import host_memory

    if framework == "jax":
        return dict(environ)
    return {**environ, host_memory.ENV: "huge_pages"}


def merge_processes(results: Sequence[dict], tolerances: tuple[float, float],
                    reference: str = "PyTorch eager") -> tuple[list[Row], dict]:
    """One framework's rows per process (their JSON), merged per configuration in the order
    they came, with parity checked on the losses each process reported."""
    rows = [Row(**{k: (tuple(v) if k == "losses" else v) for k, v in r.items()
                   if k in _ROW_FIELDS})
            for result in results for r in result["rows"]]
    configs = list(dict.fromkeys(r.config for r in rows))
    merged, parity = [], {}
    for config in configs:
        mine = [r for r in rows if r.config == config]
        merged += mine
        found = check_parity(config, {r.framework: r.losses for r in mine}, tolerances,
                             reference)
        parity.update({f"{config} {k}": v for k, v in found.items()})
    return merged, parity


_ROW_FIELDS = {f.name for f in dataclasses.fields(Row)}


def run_in_processes(script: str, argv: Sequence[str], tolerances: tuple[float, float],
                     json_path: str = "") -> None:
    """`--order processes`: runs `script` once per framework (`process_argv`), each process
    printing its own environment and rows, then prints the merged table and parity; exits with
    one line if a process fails."""
    import subprocess
    import tempfile

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for framework in ("jax", "torch"):
            path = os.path.join(tmp, f"{framework}.json")
            print(f"== {framework}, a process of its own", flush=True)
            done = subprocess.run([sys.executable, script, *process_argv(argv, framework, path)],
                                  env=process_environ(dict(os.environ), framework))
            if done.returncode != 0:
                sys.exit(f"error: the {framework} process failed (exit {done.returncode}); "
                         "its output is above")
            with open(path) as f:
                results.append(json.load(f))
    print("\n== merged")
    rows, parity = merge_processes(results, tolerances)
    print(table(rows))
    if json_path:
        with open(json_path, "w") as f:
            json.dump({"environments": [r["environment"] for r in results],
                       "rows": [r.to_json() for r in rows], "parity": parity,
                       "order": PROCESSES}, f, indent=1)


def torch_device(args: argparse.Namespace, jax_backend: str) -> str | None:
    """Imports PyTorch (one-line exit if missing), sets its threads, resolves `--device`;
    None (no import) when only JAX is timed."""
    if args.frameworks == "jax":
        return None
    try:
        import torch
    except ImportError:
        sys.exit("error: PyTorch is not installed; pip install -c constraints.txt -e '.[bench]' "
                 "(or a torch wheel matching this machine)")
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    if args.device != "auto":
        return args.device
    return "cuda" if jax_backend == "gpu" and torch.cuda.is_available() else "cpu"
