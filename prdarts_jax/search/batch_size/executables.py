"""A gradient program's compiled executables per batch size, compiled ahead of time if asked.

Under plain jit, each new batch size compiles on its first call, inside the training loop, and
the compiled-memory probe had to compile the same program once more to read its
`memory_analysis()`. Here the executables of one program are kept per batch size: the steps
and the probe share them (one compile per size), and sizes the batch-size controller is
predicted to reach can be compiled by background threads while training continues at the
current size. The computation is the jitted program's own; only when it compiles differs, so
results (and exact resume) are unchanged.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from typing import Any, Callable

import jax

from prdarts_jax.loops import program_store

log = logging.getLogger("prdarts_jax")


def abstract_args(args: tuple) -> tuple:
    """Shapes, dtypes and shardings of `args`: what lowering needs, without holding buffers
    (which the main thread's update programs may donate meanwhile)."""
    def spec(x):
        if isinstance(x, jax.Array):  # an uncommitted array goes wherever the program runs
            return jax.ShapeDtypeStruct(x.shape, x.dtype,
                                        sharding=x.sharding if x.committed else None)
        return x
    return jax.tree.map(spec, args)


class BatchPrograms:
    """Calls `jitted` through executables kept per batch size (the length of `args[batch_arg]`,
    with its sharding: the same programs serve runs on different device counts).

    `threads` > 0 enables `prefetch`, which compiles further sizes in that many background
    threads; a call that needs a size being compiled waits for it instead of compiling again.
    With an `identity` (what the program computes, `loops/program_store.py`) executables come
    from the program store when it holds them.
    """

    def __init__(self, jitted: Callable, batch_arg: int, threads: int = 0,
                 identity: str | None = None):
        self.jitted = jitted
        self.batch_arg = batch_arg
        self.identity = identity
        self._futures: dict[tuple, concurrent.futures.Future] = {}
        self._lock = threading.Lock()
        self._pool = (concurrent.futures.ThreadPoolExecutor(threads, "prdarts-compile")
                      if threads > 0 else None)

    def __call__(self, *args: Any) -> Any:
        return self.executable(args)(*args)

    def executable(self, args: tuple) -> jax.stages.Compiled:
        """The executable for the batch size of `args`, compiled here if nobody has yet."""
        future, mine = self._claim(self._key(args[self.batch_arg]))
        if mine:
            self._compile(future, abstract_args(args))
        return future.result()

    def prefetch(self, args: tuple, sizes: list[int]) -> None:
        """Starts background compiles for `sizes` (the batch argument resized; others alike)."""
        if self._pool is None:
            return
        for b in sizes:
            resized = list(abstract_args(args))
            idx = resized[self.batch_arg]
            resized[self.batch_arg] = jax.ShapeDtypeStruct((b, *idx.shape[1:]), idx.dtype,
                                                           sharding=getattr(idx, "sharding", None))
            future, mine = self._claim(self._key(resized[self.batch_arg]))
            if mine:
                self._pool.submit(self._compile, future, tuple(resized))

    def sizes(self) -> list[int]:
        """Batch sizes compiled or being compiled (for any placement)."""
        return sorted({b for b, _ in self._futures})

    @staticmethod
    def _key(batch: Any) -> tuple:
        return batch.shape[0], getattr(batch, "sharding", None)

    def _claim(self, key: tuple) -> tuple[concurrent.futures.Future, bool]:
        with self._lock:
            if key in self._futures:
                return self._futures[key], False
            future = self._futures[key] = concurrent.futures.Future()
            return future, True

    def _compile(self, future: concurrent.futures.Future, args: tuple) -> None:
        t0 = time.time()
        try:
            def lower_and_compile():
                return self.jitted.lower(*args).compile()
            future.set_result(lower_and_compile() if self.identity is None else
                              program_store.compiled(self.identity, args, lower_and_compile))
        except BaseException as err:  # noqa: BLE001 - re-raised where the executable is needed
            future.set_exception(err)
            return
        background = threading.current_thread() is not threading.main_thread()
        log.log(logging.INFO if background else logging.DEBUG, "compiled %s for batch %d in "
                "%.1f s%s", getattr(self.jitted, "__name__", "step"),
                args[self.batch_arg].shape[0], time.time() - t0,
                " (in the background)" if background else "")
