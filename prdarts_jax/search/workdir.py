"""A search's workdir: starting one afresh, refusing a resume with a different config, and the
files a finished search leaves (genotype.json, genotype.txt, final_pools.json)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import time

import ml_collections

from prdarts_jax.errors import ConfigError
from prdarts_jax.runtime import parallel
from prdarts_jax.search.pools import CellPools
from prdarts_jax.space.genotypes import Genotype, save_genotype

log = logging.getLogger("prdarts_jax")

CONFIG_FILE = "config.json"
GENOTYPE_FILE = "genotype.json"

SAFE_CHANGES = ("log_every", "compilation_cache_dir", "data_dir", "allow_config_changes",
                "num_devices", "batch.compile_ahead")
"""Config keys that may differ on resume (with --config.allow_config_changes=True)."""


def is_finished(workdir: str) -> bool:
    return os.path.exists(os.path.join(workdir, GENOTYPE_FILE))


def open_workdir(config: ml_collections.ConfigDict, workdir: str) -> None:
    """Checks a resume's config against the saved one; a workdir without checkpoints is
    started afresh (an unfinished run's files moved aside)."""
    config_path = os.path.join(workdir, CONFIG_FILE)
    has_checkpoints = os.path.isdir(os.path.join(workdir, "checkpoints"))
    if has_checkpoints and os.path.exists(config_path):
        with open(config_path) as f:
            _check_config(json.load(f), json.loads(config.to_json_best_effort()),
                          config.allow_config_changes)
    elif not has_checkpoints and parallel.is_main_process():
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


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _check_config(saved: dict, current: dict, allow: bool) -> None:
    """Refuses a resume whose config differs, except SAFE_CHANGES with the explicit flag."""
    a, b = _flat(saved), _flat(current)
    differing = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
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
