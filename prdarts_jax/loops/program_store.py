"""Compiled step programs kept on disk by what they compute, so that a warm start skips tracing
and lowering as well as XLA.

JAX's persistent cache keys an executable by the lowered program, so a resumed search still
traces and lowers every program of its cycle (the quick search's heaviest: 9 s tracing, 3 s
lowering on 2 cores) before it finds it. This store keys an executable by what determines the
program without tracing it: an `identity` its caller gives (the supernet's structure and every
static setting of the step), the shapes, dtypes and shardings of its arguments, and a
`fingerprint` of everything else that could change the program: the source of this package, the
JAX and jaxlib versions, `XLA_FLAGS`, the devices, JAX's numerics settings and the CPU kernels
in use. Any change there is a new key, never a stale program.

Only executables XLA built in this process are stored: one that JAX loaded from its persistent
cache does not serialise again whole on XLA:CPU (jaxlib 0.10: the copy fails at its first call
with `Function … not found`), so a program JAX found in its cache (or reused from memory: no
compile event) is left to that cache. An entry keeps the ids of the devices its program runs
on and is loaded onto exactly those (a 1-device program of a host with 8 devices stays on its
device).

The store lives beside JAX's persistent cache (`<jax_compilation_cache_dir>/prdarts_programs`):
it is on wherever that cache is (the CLIs' `compilation_cache_dir`, the test session's), off
where it is not, in multi-process runs (their executables span processes) and with
`PRDARTS_PROGRAM_STORE=off`. A file that cannot be read is removed and the program compiled
again; a failed write costs only the next start its trace. Programs are written by a
background thread (serialising one takes 0.2-0.4 s at paper scale, which the first steps would
otherwise wait for); `wait()` blocks until those handed over are on disk, and runs at exit.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import functools
import hashlib
import logging
import os
import pickle
import tempfile
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax

from prdarts_jax.models import formulations
from prdarts_jax.runtime import compile_timer

log = logging.getLogger("prdarts_jax")

ENV = "PRDARTS_PROGRAM_STORE"
SUBDIR = "prdarts_programs"
PACKAGE = Path(__file__).resolve().parents[1]


def _jax_cache_dir() -> str | None:
    return jax.config.jax_compilation_cache_dir


def directory() -> Path | None:
    """Where programs are kept now (None: the store is off)."""
    if os.environ.get(ENV, "").strip().lower() in ("0", "off", "none", "false"):
        return None
    cache = _jax_cache_dir()
    if not cache or jax.process_count() > 1:
        return None
    return Path(cache) / SUBDIR


@functools.lru_cache(maxsize=1)
def _source_digest() -> str:
    """A digest of this package's source: a changed module is a new key for every program."""
    h = hashlib.sha256()
    for path in sorted(PACKAGE.rglob("*")):
        if path.suffix in (".py", ".cc", ".h") and path.is_file():
            h.update(str(path.relative_to(PACKAGE)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()


_NOT_PROGRAM = ("jax_log_compiles", "jax_explain_cache_misses", "jax_compilation_cache_dir",
                "jax_persistent_cache_min_compile_time_secs",
                "jax_persistent_cache_min_entry_size_bytes")
"""JAX settings that cannot change a program (logging, where and what its cache keeps)."""


def fingerprint() -> str:
    """What, besides a program's identity and arguments, decides the executable it compiles to:
    the source, the versions, `XLA_FLAGS` and every `PRDARTS_*` variable (formulation switches
    are read at trace time), the devices, JAX's settings, the formulations and native kernels."""
    import jaxlib

    env = sorted((k, v) for k, v in os.environ.items()
                 if k == "XLA_FLAGS" or (k.startswith("PRDARTS_") and k != ENV))
    settings = sorted((k, repr(v)) for k, v in jax.config.values.items()
                      if k not in _NOT_PROGRAM)
    return repr((_source_digest(), jax.__version__, jaxlib.__version__, env,
                 [(d.platform, d.device_kind, d.id) for d in jax.devices()], settings,
                 formulations.default_impl("depthwise_conv"),
                 formulations.default_impl("max_pool3"), formulations.native_setting()))


def signature(args: tuple) -> str:
    """The tree structure of `args` and each leaf's shape, dtype, weak type and sharding
    (None: uncommitted, so placed wherever the program runs) with its devices."""
    def leaf(x: Any) -> tuple:
        if not hasattr(x, "shape"):   # a Python number: traced as a weakly typed scalar
            return ("python", type(x).__name__)
        committed = getattr(x, "committed", True)
        sharding = getattr(x, "sharding", None) if committed else None
        devices = sorted(d.id for d in sharding.device_set) if sharding is not None else None
        return (tuple(x.shape), str(x.dtype), bool(getattr(x, "weak_type", False)),
                repr(sharding), devices)
    leaves, tree = jax.tree.flatten(args)
    return repr((str(tree), [leaf(x) for x in leaves]))


def key(identity: str, args: tuple) -> str:
    return hashlib.sha256(repr((identity, signature(args), fingerprint())).encode()).hexdigest()


def compiled(identity: str, args: tuple,
             lower_and_compile: Callable[[], jax.stages.Compiled]) -> jax.stages.Compiled:
    """The executable of the program `identity` (`name|what it computes`) for `args` (arrays
    or ShapeDtypeStructs): from the store when it holds it, else `lower_and_compile()`, which
    is stored when it compiled here (not when JAX found it in its persistent cache)."""
    where = directory()
    if where is None:
        return lower_and_compile()
    path = where / f"{key(identity, args)}.pkl"
    loaded = _load(path, identity.split("|", 1)[0])
    if loaded is not None:
        return loaded
    compiles, hits = compile_timer.thread_counts()
    executable = lower_and_compile()
    compile_timer.count("store_misses")
    after = compile_timer.thread_counts()
    if after[0] > compiles and after[1] == hits:   # built here, not loaded or reused
        _save_later(path, executable)
    return executable


_writer: list[concurrent.futures.ThreadPoolExecutor] = []
_pending: list[concurrent.futures.Future] = []
_writer_lock = threading.Lock()


def _save_later(path: Path, executable: jax.stages.Compiled) -> None:
    """`_save` in the store's writer thread (one: writes stay in order, one core at most); in
    this thread where none can start (the interpreter shutting down)."""
    with _writer_lock:
        if not _writer:
            _writer.append(concurrent.futures.ThreadPoolExecutor(1, "prdarts-program-store"))
            atexit.register(wait)   # registered after JAX's exit handlers: runs before them
        try:
            _pending.append(_writer[0].submit(_save, path, executable))
            return
        except RuntimeError:   # no new threads at interpreter shutdown
            pass
    _save(path, executable)


def wait() -> None:
    """Blocks until every program handed to the store so far is written (or failed to be)."""
    with _writer_lock:
        pending = list(_pending)
        _pending.clear()
    for future in pending:
        future.result()


def _load(path: Path, name: str) -> jax.stages.Compiled | None:
    if not path.exists():
        return None
    from jax.experimental import serialize_executable

    t0 = time.perf_counter()
    try:
        formulations.prepare()  # native kernels registered before a program that calls them
        with open(path, "rb") as f:
            payload, in_tree, out_tree, device_ids = pickle.loads(zlib.decompress(f.read()))
        by_id = {d.id: d for d in jax.devices()}
        executable = serialize_executable.deserialize_and_load(
            payload, in_tree, out_tree, execution_devices=[by_id[i] for i in device_ids])
    except Exception as err:  # noqa: BLE001 - any unreadable entry is compiled again
        log.warning("could not load the stored program %s (%s: %s); compiling it again",
                    path.name, type(err).__name__, err)
        path.unlink(missing_ok=True)
        return None
    compile_timer.record(name, time.perf_counter() - t0)
    compile_timer.count("store_hits")
    return executable


def _save(path: Path, executable: jax.stages.Compiled) -> None:
    from jax.experimental import serialize_executable

    try:
        payload, in_tree, out_tree = serialize_executable.serialize(executable)
        device_ids = [d.id for d in execution_devices(executable)]
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:   # level 1: 14 MB -> 2.4 MB in 0.1 s
            f.write(zlib.compress(pickle.dumps((payload, in_tree, out_tree, device_ids),
                                               protocol=pickle.HIGHEST_PROTOCOL), 1))
        os.replace(tmp, path)
    except Exception as err:  # noqa: BLE001 - the run goes on; the next start traces again
        log.debug("could not store the program %s: %s", path.name, err)


def execution_devices(executable: jax.stages.Compiled) -> list:
    """The devices `executable` runs on, in its order. Loading must name them: by default
    `deserialize_and_load` spreads a program over every device, so a 1-device program stored
    on a host with 8 would expect 8 shards of each argument."""
    return list(executable._executable.xla_executable.local_devices())


class StoredProgram:
    """A jitted program called through executables from the store: one per `variant(args)`
    (what may change between calls of one program: a batch's length, the devices)."""

    def __init__(self, jitted: Callable[..., Any], identity: str,
                 variant: Callable[[tuple], Any]):
        self.jitted, self.identity, self.variant = jitted, identity, variant
        self.__name__ = getattr(jitted, "__name__", "program")
        self._executables: dict[Any, jax.stages.Compiled] = {}

    def __call__(self, *args: Any) -> Any:
        v = self.variant(args)
        executable = self._executables.get(v)
        if executable is None:
            executable = self._executables[v] = compiled(
                self.identity, args, lambda: self.jitted.lower(*args).compile())
        return executable(*args)


def placement_of(*xs: Any) -> tuple:
    """The shapes and shardings of `xs` (pytrees: their first leaves): a `variant`."""
    firsts = [jax.tree.leaves(x)[0] for x in xs]
    return tuple((tuple(x.shape), getattr(x, "sharding", None)) for x in firsts)
