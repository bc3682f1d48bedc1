"""Reads finished search and retraining workdirs back: the input of `prdarts_jax.collect`.

`scan(roots)` walks the given directories for workdirs: a directory with a config.json (a
search config has `schedule`, a retraining config `genotype` and `epochs`) or one named
`seed_*`. It does not descend into a workdir. Each finished run becomes a `SearchRun` or a
`TrainRun`; every other workdir becomes a `Skipped` with a one-line reason. It never imports
JAX, so it is instant on a login node.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Iterator, Sequence

from prdarts_jax.runtime.metrics import read_metrics
from prdarts_jax.space.genotypes import PUBLISHED, Genotype

DEVICE_KEYS = ("num_devices", "device_count")
"""Keys of an epoch record or config.json that give the number of devices a search ran on."""


@dataclasses.dataclass(frozen=True)
class SearchRun:
    """A finished search: `seconds` sums its epoch records' `seconds` (training, evaluation and
    compiling within epochs; not the start-up or the prune/replace steps between cycles);
    `devices` is None where the run did not record how many devices it used."""

    workdir: str
    space: str
    seed: int
    dataset: str
    cells: str
    seconds: float
    devices: int | None

    @property
    def device_hours(self) -> float:
        return self.seconds * (self.devices or 1) / 3600


@dataclasses.dataclass(frozen=True)
class TrainRun:
    """A finished retraining: `error` is results.json's mean test error over the last epochs
    (a fraction); `genotype` is the config's value (a published name or a genotype.json
    path), `cells` the trained cells in canonical JSON; `madds` the network's multiply-adds
    (None where results.json predates them)."""

    workdir: str
    dataset: str
    seed: int
    genotype: str
    cells: str
    params: int
    error: float
    madds: int | None = None


@dataclasses.dataclass(frozen=True)
class Skipped:
    workdir: str
    reason: str


class _Skip(Exception):
    """A workdir that is unfinished or unreadable; the message is the one-line reason."""


def canonical_cells(data: Any) -> str:
    """The genotype JSON in one canonical string, so that equal cells compare equal."""
    return json.dumps(Genotype.from_json(data).to_json(), sort_keys=True)


def _json(path: str, what: str) -> Any:
    if not os.path.exists(path):
        raise _Skip(f"no {os.path.basename(path)} ({what})")
    try:
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError as err:
        raise _Skip(f"{os.path.basename(path)} is not valid JSON ({err})") from None


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Skip(f"{what} is {value!r}, not an integer")
    return value


def _devices(config: dict, epochs: Sequence[dict]) -> int | None:
    for record in (*epochs, config):
        for key in DEVICE_KEYS:
            if isinstance(record.get(key), int) and record[key] >= 1:
                return record[key]
    return None


def read_search(workdir: str, config: dict) -> SearchRun:
    cells = canonical_cells(_json(os.path.join(workdir, "genotype.json"),
                                  "the search has not finished"))
    path = os.path.join(workdir, "metrics.jsonl")
    if not os.path.exists(path):
        raise _Skip("no metrics.jsonl")
    epochs = {}
    for record in read_metrics(path):
        if isinstance(record, dict) and record.get("type") == "epoch":
            epochs[record.get("cycle"), record.get("epoch")] = record
    if not epochs:
        raise _Skip("metrics.jsonl has no epoch records")
    seconds = [r.get("seconds") for r in epochs.values()]
    if not all(isinstance(s, (int, float)) for s in seconds):
        raise _Skip("an epoch record of metrics.jsonl has no number in `seconds`")
    return SearchRun(workdir, str(config.get("space", "?")).upper(),
                     _int(config.get("seed"), "config.json's seed"),
                     str(config.get("dataset", "?")), cells, float(sum(seconds)),
                     _devices(config, list(epochs.values())))


def read_training(workdir: str, config: dict) -> TrainRun:
    results = _json(os.path.join(workdir, "results.json"), "the retraining has not finished")
    if not isinstance(results, dict):
        raise _Skip("results.json is not a JSON object")
    error = results.get("mean_test_error_last_epochs")
    if not isinstance(error, (int, float)):
        raise _Skip("results.json has no mean_test_error_last_epochs")
    if results.get("epochs") != config.get("epochs"):
        raise _Skip(f"results.json is of {results.get('epochs')} epochs but config.json asks "
                    f"for {config.get('epochs')} (the retraining continues)")
    return TrainRun(workdir, str(results.get("dataset", config.get("dataset"))),
                    _int(config.get("seed"), "config.json's seed"), str(config["genotype"]),
                    canonical_cells(results.get("genotype_cells")),
                    _int(results.get("params"), "results.json's params"), float(error),
                    None if results.get("madds") is None
                    else _int(results.get("madds"), "results.json's madds"))


def _read(workdir: str) -> SearchRun | TrainRun:
    config = _json(os.path.join(workdir, "config.json"), "not started, or failed at the start")
    if not isinstance(config, dict):
        raise _Skip("config.json is not a JSON object")
    if "schedule" in config:
        return read_search(workdir, config)
    if "genotype" in config and "epochs" in config:
        return read_training(workdir, config)
    raise _Skip("config.json is neither a search nor a retraining config")


def _workdirs(root: str) -> Iterator[str]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        if "config.json" in filenames or os.path.basename(dirpath).startswith("seed_"):
            dirnames.clear()
            yield dirpath


@dataclasses.dataclass(frozen=True)
class Collection:
    searches: list[SearchRun]
    trainings: list[TrainRun]
    skipped: list[Skipped]


def scan(roots: Sequence[str]) -> Collection:
    """Every workdir under `roots`, read. FileNotFoundError if a root does not exist."""
    searches, trainings, skipped = [], [], []
    for root in roots:
        if not os.path.isdir(root):
            raise FileNotFoundError(f"{root} is not a directory: pass the --root of a grid (or "
                                    "any directory holding workdirs)")
        for workdir in _workdirs(root):
            try:
                run = _read(workdir)
            except _Skip as err:
                skipped.append(Skipped(workdir, str(err)))
            except (OSError, ValueError, KeyError, TypeError) as err:
                skipped.append(Skipped(workdir, f"unreadable: {err}".splitlines()[0]))
            else:
                (searches if isinstance(run, SearchRun) else trainings).append(run)
    return Collection(searches, trainings, skipped)


def _parts(path: str) -> list[str]:
    return [p for p in os.path.normpath(path).split(os.sep) if p not in ("", ".")]


def search_of(training: TrainRun, searches: Sequence[SearchRun]) -> SearchRun | None:
    """The search whose genotype a retraining trained: the one its genotype path names (the
    same file, or a path ending in the search's workdir name), else the only search with the
    same cells; None for a published cell or an unknown search."""
    if training.genotype.upper() in PUBLISHED:
        return None
    target = os.path.realpath(training.genotype)
    for search in searches:
        if os.path.realpath(os.path.join(search.workdir, "genotype.json")) == target:
            return search
    wanted = _parts(training.genotype)
    shared = {}
    for search in searches:
        mine = _parts(os.path.join(search.workdir, "genotype.json"))
        n = 0
        while n < min(len(mine), len(wanted)) and mine[-1 - n] == wanted[-1 - n]:
            n += 1
        shared[search] = n
    longest = max(shared.values(), default=0)
    best = [s for s, n in shared.items() if n == longest]
    if longest >= 3 and len(best) == 1:   # at least <space>/seed_<s>/genotype.json
        return best[0]
    same = [s for s in searches if s.cells == training.cells]
    return same[0] if len(same) == 1 else None
