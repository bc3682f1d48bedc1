"""TensorBoard scalars written while a run goes (`tensorboard --logdir runs/` works during a
search), through tensorboardX. `metrics.jsonl` stays the source of truth: this mirrors its
records, and a run whose events cannot be written goes on with a warning.

Tags: every number of an epoch record as `epoch/<key>` (step: the epoch counted over the whole
run); the pool statistics of a `cycle_stats` record as `cycle_<cell>/<key>[/<value>]` (step:
the cycle); a `cycle` record's compile seconds as `cycle/compile_seconds`, and its seconds per
program and persistent-cache hits and misses as `cycle/compile/programs/<program>`,
`cycle/compile/cache_hits` and `cycle/compile/cache_misses`. A resumed run writes
the epochs after its checkpoint again; TensorBoard shows the newest value of a step.
tensorboardX imports PyTorch when it is installed (2 s here; 0.2 s without it), so it is
imported at the first record, not at start-up.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any, Callable, Iterator, Mapping

log = logging.getLogger("prdarts_jax")

LOGDIR = "tensorboard"
_SKIP = ("type", "cycle", "epoch", "step")


def _numbers(prefix: str, values: Mapping[str, Any]) -> Iterator[tuple[str, float]]:
    for key, value in values.items():
        if isinstance(value, bool) or key in _SKIP:
            continue
        if isinstance(value, (int, float)):
            yield f"{prefix}/{key}", float(value)
        elif isinstance(value, Mapping):
            yield from _numbers(f"{prefix}/{key}", value)


def scalars(record: Mapping[str, Any]) -> list[tuple[str, float]]:
    """(tag, value) of every scalar a metrics record holds (see the module docstring)."""
    kind = record.get("type", "epoch")
    if kind == "epoch":
        return list(_numbers("epoch", record))
    if kind == "cycle_stats":
        return [pair for cell in ("normal", "reduce") if isinstance(record.get(cell), Mapping)
                for pair in _numbers(f"cycle_{cell}", record[cell])]
    if kind == "cycle" and "compile_seconds" in record:
        return [("cycle/compile_seconds", float(record["compile_seconds"])),
                *_numbers("cycle/compile", record.get("compile", {}))]
    return []


class TensorBoardWriter:
    """Writes the scalars of each record under `logdir` as one event, on disk when `write`
    returns; `step_of(record)` gives its step (None: not written)."""

    def __init__(self, logdir: str, step_of: Callable[[Mapping[str, Any]], int | None]):
        self.logdir, self.step_of = logdir, step_of
        self._writer: Any = None
        self._failed = False

    def write(self, record: Mapping[str, Any]) -> None:
        step = self.step_of(record)
        pairs = scalars(record)
        if step is None or not pairs or self._failed:
            return
        try:
            from tensorboardX.proto import event_pb2, summary_pb2
            summary = summary_pb2.Summary(value=[
                summary_pb2.Summary.Value(tag=tag, simple_value=value) for tag, value in pairs])
            writer = self._open()
            writer.write_event(event_pb2.Event(wall_time=time.time(), step=step,
                                               summary=summary))
            writer.flush()
        except Exception as err:  # noqa: BLE001 - TensorBoard is a view; the run goes on
            self._failed = True
            log.warning("TensorBoard events are not written (%s: %s); metrics.jsonl has "
                        "everything", type(err).__name__, err)

    def _open(self) -> Any:
        """tensorboardX's synchronous event file (its SummaryWriter queues events for a
        thread, so a flush may not yet hold the newest)."""
        if self._writer is None:
            from tensorboardX.event_file_writer import EventsWriter
            os.makedirs(self.logdir, exist_ok=True)
            self._writer = EventsWriter(os.path.join(self.logdir, "events"))
        return self._writer

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
