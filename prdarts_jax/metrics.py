"""metrics.jsonl: one JSON object per line, appended and flushed as the run goes."""

from __future__ import annotations

import json
import os
from typing import Any, Iterator


class MetricsWriter:
    def __init__(self, path: str):
        self.path = path

    def write(self, record: dict[str, Any]) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(record, default=_to_builtin) + "\n")
            f.flush()
            os.fsync(f.fileno())


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
