"""A search's workdir: the checks before anything runs (its kind, a resume's or a finished
search's config), starting one afresh once the first state exists, and the files a finished
search leaves (genotype.json, genotype.txt, final_pools.json).

Nothing is written into the workdir until the data has loaded and the first state is built,
so a run that fails early (no dataset, a bad device count) leaves the workdir as it was."""

from __future__ import annotations

import json
import logging
import os
import shutil
import time

import ml_collections

from prdarts_jax.errors import ConfigError
from prdarts_jax.runtime import parallel, workdirs
from prdarts_jax.runtime.flags import flatten
from prdarts_jax.search.config import base_config
from prdarts_jax.search.pools import CellPools
from prdarts_jax.space.genotypes import Genotype, save_genotype

log = logging.getLogger("prdarts_jax")

CONFIG_FILE = "config.json"
GENOTYPE_FILE = "genotype.json"

SAFE_CHANGES = ("log_every", "compilation_cache_dir", "data_dir", "allow_config_changes",
                "num_devices", "batch.compile_ahead", "cpu_library_fusions", "bn_impl",
                "pool_impl", "depthwise_impl", "sgd_impl",
                "edge_sum_impl")
"""Config keys that may differ on resume (with --config.allow_config_changes=True)."""


def is_finished(workdir: str) -> bool:
    return os.path.exists(os.path.join(workdir, GENOTYPE_FILE))


def check_workdir(config: ml_collections.ConfigDict, workdir: str) -> None:
    """Refuses a workdir that holds a retraining or unrelated files, one this user cannot
    write, and a resume whose config differs from the saved one. Writes nothing."""
    workdirs.expect(workdir, workdirs.SEARCH)
    config_path = os.path.join(workdir, CONFIG_FILE)
    if os.path.isdir(os.path.join(workdir, "checkpoints")) and os.path.exists(config_path):
        with open(config_path) as f:
            _check_config(json.load(f), json.loads(config.to_json_best_effort()),
                          config.allow_config_changes)


def check_finished(config: ml_collections.ConfigDict, workdir: str) -> None:
    """A finished search's workdir run again: fine with its own config (nothing to do), a
    ConfigError naming the differences with another one."""
    config_path = os.path.join(workdir, CONFIG_FILE)
    if not os.path.exists(config_path):
        return
    with open(config_path) as f:
        saved = flatten(json.load(f))
    current = flatten(json.loads(config.to_json_best_effort()))
    differing = [k for k in _differing(saved, current) if k not in SAFE_CHANGES]
    if differing:
        shown = ", ".join(f"{k}: {saved.get(k)!r} -> {current.get(k)!r}" for k in differing[:4])
        more = f" and {len(differing) - 4} more" if len(differing) > 4 else ""
        raise ConfigError(
            f"{workdir} holds a finished search whose config differs from this one ({shown}"
            f"{more}); to search with this config use a new --workdir (its genotype stays in "
            f"{os.path.join(workdir, GENOTYPE_FILE)})")


def start_workdir(workdir: str) -> None:
    """Creates the workdir of a fresh search (the main process); files of an earlier run
    that left no checkpoint are moved aside first."""
    if parallel.is_main_process() and not os.path.isdir(os.path.join(workdir, "checkpoints")):
        _prepare_workdir(workdir)


def write_config(config: ml_collections.ConfigDict, workdir: str) -> None:
    if parallel.is_main_process():
        with open(os.path.join(workdir, CONFIG_FILE), "w") as f:
            f.write(config.to_json_best_effort(indent=1))


def _prepare_workdir(workdir: str) -> None:
    """Creates the workdir; files of an unfinished run without checkpoints are moved aside."""
    if os.path.exists(os.path.join(workdir, "metrics.jsonl")):
        backup = os.path.join(workdir, f"previous-{time.strftime('%Y%m%d-%H%M%S')}")
        os.makedirs(backup)
        for name in os.listdir(workdir):
            if not name.startswith("previous-"):
                shutil.move(os.path.join(workdir, name), backup)
        log.warning("workdir %s held an unfinished search; moved it to %s and starting afresh",
                    workdir, backup)
    os.makedirs(workdir, exist_ok=True)


def _differing(saved: dict, current: dict) -> list[str]:
    """The dotted keys whose values differ between two flattened configs. A key the saved
    config lacks (a workdir from before the key existed) counts at its default value."""
    defaults = flatten(json.loads(base_config().to_json_best_effort()))
    saved = {**{k: v for k, v in defaults.items() if k not in saved}, **saved}
    return sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))


def _check_config(saved: dict, current: dict, allow: bool) -> None:
    """Refuses a resume whose config differs, except SAFE_CHANGES with the explicit flag."""
    differing = _differing(flatten(saved), flatten(current))
    unsafe = [k for k in differing if not (allow and k in SAFE_CHANGES)]
    if unsafe:
        hint = ("" if allow or any(k not in SAFE_CHANGES for k in differing) else
                "; pass --config.allow_config_changes=True to accept these")
        raise ConfigError(
            f"the workdir holds a search with a different config ({', '.join(unsafe)}): resume "
            f"with the same config or use a new --workdir{hint}")
    if differing:
        log.warning("resuming with changed config keys: %s", ", ".join(differing))


def write_finished(workdir: str, genotype: Genotype, pools: CellPools) -> None:
    """The files of a finished search (the main process writes them)."""
    if not parallel.is_main_process():
        return
    with open(os.path.join(workdir, "final_pools.json"), "w") as f:
        json.dump(pools.to_json(), f, indent=1)
    with open(os.path.join(workdir, "genotype.txt"), "w") as f:
        f.write(genotype.describe() + "\n")
    save_genotype(genotype, os.path.join(workdir, GENOTYPE_FILE))
