"""metrics.jsonl: one JSON object per line, appended and flushed as the run goes."""

from __future__ import annotations

import json
import os
from typing import Any, Iterator


class MetricsWriter:
    """Appends records to `path`; a disabled writer (a process other than 0) writes nothing.
    A `mirror` (the TensorBoard writer) gets every record after it is on disk."""

    def __init__(self, path: str, enabled: bool = True, mirror: Any = None):
        self.path = path
        self.enabled = enabled
        self.mirror = mirror

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(record, default=_to_builtin) + "\n")
            f.flush()
            os.fsync(f.fileno())
        if self.mirror is not None:
            self.mirror.write(record)

    def close(self) -> None:
        if self.mirror is not None:
            self.mirror.close()

    def size(self) -> int:
        """Bytes written so far (a checkpoint records it to truncate to on resume)."""
        return os.path.getsize(self.path) if os.path.exists(self.path) else 0

    def truncate(self, size: int) -> None:
        """Drops everything after `size` bytes (records written after the checkpoint)."""
        if self.enabled:
            with open(self.path, "a+") as f:
                f.truncate(size)


def _to_builtin(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def read_metrics(path: str) -> Iterator[dict[str, Any]]:
    """The records of a metrics.jsonl (a torn last line, from a kill mid-write, is skipped)."""
    with open(path) as f:
        for line in f:
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue
