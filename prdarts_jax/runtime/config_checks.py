"""Config checks shared by the search and the retraining: one-line `ConfigError`s."""

from __future__ import annotations

import os
from typing import Any, Sequence

import ml_collections

from prdarts_jax.data import known_datasets
from prdarts_jax.errors import ConfigError
from prdarts_jax.runtime import parallel, workdirs
from prdarts_jax.runtime.flags import flatten


def need(ok: bool, msg: str) -> None:
    """Raises ConfigError(msg) unless `ok`."""
    if not ok:
        raise ConfigError(msg)


def _kind(value: Any) -> str | None:
    """The type a field must keep: int, float, bool, str, or a tuple of ints/floats/strs."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "str"
    if isinstance(value, tuple) and value:
        inner = {_kind(v) for v in value}
        return f"tuple of {inner.pop()}s" if len(inner) == 1 else None
    return None


def _is(value: Any, kind: str) -> bool:
    if kind.startswith("tuple of "):
        inner = kind[len("tuple of "):-1]
        return isinstance(value, tuple) and all(_is(v, inner) for v in value)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    return _kind(value) == kind


def check_types(config: ml_collections.ConfigDict, base: ml_collections.ConfigDict) -> None:
    """Every field the base config sets keeps its type (a tuple of ints stays one): a value
    that parsed as another type (`--config.schedule.epochs=abc`) stops here with one line."""
    values = flatten(config)
    missing = sorted(set(flatten(base)) - set(values))
    need(not missing, f"the config lacks the fields {', '.join(missing[:3])}"
         f"{', …' if len(missing) > 3 else ''}: is it a config of the other program?")
    for key, default in flatten(base).items():
        kind = _kind(default)
        if kind is None or key not in values or values[key] is None:
            continue
        example = "'(3,3,2)'" if kind.startswith("tuple") else "..."
        need(_is(values[key], kind),
             f"config.{key}={values[key]!r} must be a {kind} (e.g. --config.{key}={example})")


def check_dataset(config: ml_collections.ConfigDict) -> None:
    need(config.dataset in known_datasets(),
         f"config.dataset={config.dataset!r} is unknown; use one of {list(known_datasets())}")
    check_data_dir(config.data_dir, "config.data_dir")


def check_data_dir(data_dir: str | None, name: str) -> None:
    """A data_dir must be a folder, or a path where one can be created (a prepared, read-only
    folder is fine: nothing is written into it then)."""
    if not data_dir:
        return
    path = os.path.expanduser(data_dir)
    if os.path.exists(path):
        need(os.path.isdir(path), f"{name}={data_dir!r} is a file; point it at a TFDS data "
             "folder (or leave it empty for $TFDS_DATA_DIR or ~/tensorflow_datasets)")
        return
    workdirs.check_writable(path, name)


def check_devices(config: ml_collections.ConfigDict,
                  batch_keys: Sequence[str]) -> parallel.Placement:
    """The data-parallel placement of `config.num_devices`; every (global) batch size a step
    can take (the config keys `batch_keys`, dotted) must divide by the device count.
    Evaluation batches are rounded up instead."""
    try:
        placement = parallel.data_placement(config.num_devices)
    except ValueError as err:
        raise ConfigError(f"config.num_devices: {err}") from None
    n = placement.size
    for key in batch_keys:
        value = config
        for part in key.split("."):
            value = value[part]
        need(value % n == 0, f"config.{key}={value} must be a multiple of the {n} devices "
             "(batch sizes are global); change it or set config.num_devices")
    return placement
