"""What a `--workdir` holds, told from its files, and one-line errors for a workdir of the wrong
kind or one this process cannot write, found before anything is loaded, compiled or written."""

from __future__ import annotations

import json
import os
import shlex
import tempfile

from prdarts_jax.errors import ConfigError

SEARCH, TRAIN, EMPTY, MISSING, OTHER = "search", "train", "empty", "missing", "other"

_RUN_FILES = ("config.json", "metrics.jsonl", "genotype.json", "genotype.txt",
              "final_pools.json", "results.json", "checkpoints", "checkpoints_unreadable",
              "report", "tensorboard")
"""Files and folders that a search or a retraining writes into its workdir."""

TRAIN_CONFIGS = {"digits": "configs/train_digits.py", "cifar10": "configs/train_cifar10.py",
                 "cifar100": "configs/train_cifar100.py"}


def _config(workdir: str) -> dict:
    try:
        with open(os.path.join(workdir, "config.json")) as f:
            config = json.load(f)
        return config if isinstance(config, dict) else {}
    except (OSError, ValueError):
        return {}


def kind(workdir: str) -> str:
    """`search`, `train`, `empty`, `missing` (no such path) or `other` (a directory holding
    files but none of a run's); a path that is a file is a ConfigError."""
    if not os.path.exists(workdir):
        return MISSING
    if not os.path.isdir(workdir):
        raise ConfigError(f"--workdir {workdir} is a file, not a directory; pass a new or "
                          "existing run directory")
    names = os.listdir(workdir)
    if not names:
        return EMPTY
    config = _config(workdir)
    if "schedule" in config:
        return SEARCH
    if "genotype" in config and "epochs" in config:
        return TRAIN
    if "results.json" in names:
        return TRAIN
    if any(n in names for n in ("metrics.jsonl", "genotype.txt", "final_pools.json")):
        return SEARCH
    if any(n in _RUN_FILES or n.startswith("previous-") for n in names):
        return EMPTY
    return OTHER


def check_writable(workdir: str, flag: str = "--workdir") -> None:
    """ConfigError unless this process can create `workdir` or write into it (probed with an
    empty folder made and removed at once, since permission bits do not tell for root or
    special file systems); `flag` names the setting in the message. Only the main process
    probes: it is the one that writes."""
    path = os.path.abspath(os.path.expanduser(workdir))
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    if not os.path.isdir(path):
        raise ConfigError(f"{flag} {workdir}: {path} is a file, so the folder cannot be "
                          f"created there; choose another {flag}")
    from prdarts_jax.runtime import parallel  # imports JAX: only here

    if not parallel.is_main_process():
        return
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".prdarts-probe-", dir=path))
    except OSError as err:
        raise ConfigError(f"{flag} {workdir}: cannot write into {path} ({err.strerror}); "
                          f"choose another {flag}") from None


def retrain_command(workdir: str) -> str:
    """The command that retrains the genotype of the search in `workdir`, with the retraining
    config of the search's dataset (CIFAR-10's when unknown), into `<workdir>_train`."""
    dataset = _config(workdir).get("dataset", "cifar10")
    config = TRAIN_CONFIGS.get(dataset, TRAIN_CONFIGS["cifar10"])
    base = os.path.normpath(workdir)
    return (f"python -m prdarts_jax.train --config {config} "
            f"--config.genotype={shlex.quote(os.path.join(base, 'genotype.json'))} "
            f"--workdir {shlex.quote(base + '_train')}")


def search_next_step(workdir: str) -> str:
    """What to do with a search workdir where a retraining was expected."""
    if os.path.isfile(os.path.join(workdir, "genotype.json")):
        return f"retrain its genotype in a new workdir: {retrain_command(workdir)}"
    return ("its search has not finished (no genotype.json yet): resume it with the search "
            "command, then retrain its genotype")


def expect(workdir: str, wanted: str) -> str:
    """The workdir's kind if a `wanted` run (SEARCH or TRAIN) may start or resume there;
    otherwise a ConfigError saying what it holds and what to do instead."""
    if not workdir.strip():
        raise ConfigError("--workdir is empty; name a new or existing run directory, e.g. "
                          "--workdir runs/quick")
    found = kind(workdir)
    if found == OTHER:
        raise ConfigError(f"--workdir {workdir} is a directory that holds other files but no "
                          f"{wanted} run; use a new or empty directory (e.g. runs/<name>)")
    if found == SEARCH and wanted == TRAIN:
        raise ConfigError(f"--workdir {workdir} holds a search, not a retraining; "
                          + search_next_step(workdir))
    if found == TRAIN and wanted == SEARCH:
        raise ConfigError(f"--workdir {workdir} holds a retraining, not a search; use a new "
                          "--workdir for the search")
    check_writable(workdir)
    return found
