"""Config checks shared by the search and the retraining: one-line `ConfigError`s."""

from __future__ import annotations

from typing import Sequence

import ml_collections

from prdarts_jax.data import known_datasets
from prdarts_jax.errors import ConfigError
from prdarts_jax.runtime import parallel


def need(ok: bool, msg: str) -> None:
    """Raises ConfigError(msg) unless `ok`."""
    if not ok:
        raise ConfigError(msg)


def check_dataset(config: ml_collections.ConfigDict) -> None:
    need(config.dataset in known_datasets(),
         f"config.dataset={config.dataset!r} is unknown; use one of {list(known_datasets())}")


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
