"""Evaluating a trained network on the test set: during retraining, and afterwards from a
training workdir's latest checkpoint (`python -m prdarts_jax.evaluate`)."""

from __future__ import annotations

import json
import os

import jax
import ml_collections
import numpy as np

from prdarts_jax.data import dataset_info, load_split
from prdarts_jax.errors import CheckpointError, ConfigError
from prdarts_jax.loops import evaluate as shared
from prdarts_jax.models.network import count_params
from prdarts_jax.runtime import parallel, workdirs
from prdarts_jax.runtime.checkpoints import Checkpointer
from prdarts_jax.runtime.config_checks import check_data_dir, check_devices
from prdarts_jax.space.genotypes import load_genotype
from prdarts_jax.train.config import genotype_of
from prdarts_jax.train.programs import (
    Programs,
    State,
    abstract_state,
    build_network,
    data_spec,
    programs_for,
    step_settings,
)

CHECKPOINT_DIR = "checkpoints"
GENOTYPE_FILE = "genotype.json"


def checkpointer(workdir: str, keep: int, **kwargs) -> Checkpointer:
    """The newest `keep` checkpoints under `<workdir>/checkpoints/<number>/{state,meta}`."""
    return Checkpointer(workdir, keep=keep, keep_every=0, **kwargs)


def evaluate(programs: Programs, state: State, images: jax.Array, labels: jax.Array,
             batch_size: int, placement: parallel.Placement) -> tuple[float, float]:
    """Mean test loss and accuracy in inference mode over the whole split."""
    return shared.evaluate(
        lambda idx, mask: programs.eval_batch(state["params"], state["batch_stats"], images,
                                              labels, idx, mask),
        np.arange(int(labels.shape[0])), batch_size, placement)


def load_workdir_config(workdir: str) -> ml_collections.ConfigDict:
    """The config.json of a retraining workdir; a search's workdir, or one without a
    retraining, is a ConfigError saying what to run instead."""
    found = workdirs.kind(workdir)
    if found == workdirs.MISSING:
        raise ConfigError(f"--workdir {workdir} does not exist; pass the --workdir of a "
                          "`python -m prdarts_jax.train` run")
    if found == workdirs.SEARCH:
        raise ConfigError(f"--workdir {workdir} holds a search, not a retraining; "
                          + workdirs.search_next_step(workdir))
    path = os.path.join(workdir, "config.json")
    if found != workdirs.TRAIN or not os.path.exists(path):
        raise ConfigError(f"--workdir {workdir} holds no retraining (no {path}); pass the "
                          "--workdir of a `python -m prdarts_jax.train` run")
    with open(path) as f:
        return ml_collections.ConfigDict(json.load(f))


def evaluate_workdir(workdir: str, data_dir: str | None = None) -> dict:
    """Test-set loss/accuracy/error of the latest checkpoint in a training workdir."""
    config = load_workdir_config(workdir)
    check_data_dir(data_dir, "--data_dir")
    saved = os.path.join(workdir, GENOTYPE_FILE)
    genotype = load_genotype(saved) if os.path.exists(saved) else genotype_of(config)
    info = dataset_info(config.dataset)
    net = build_network(config, genotype)
    settings = step_settings(config)
    placement = check_devices(config, ())
    ckpt = checkpointer(workdir, config.keep_checkpoints)
    try:
        restored = ckpt.restore_latest(
            lambda meta: abstract_state(net, info.image_shape, settings, placement))
    finally:
        ckpt.close()
    if restored is None:
        raise CheckpointError(f"no checkpoint in {os.path.join(workdir, CHECKPOINT_DIR)}: the "
                              "retraining has not finished an epoch yet; resume it first")
    state, meta = restored
    images, labels = parallel.main_process_first(
        lambda: load_split(config.dataset, "test", data_dir or config.data_dir or None),
        "prdarts-data")
    programs = programs_for(net, data_spec(config), settings)
    loss, acc = evaluate(programs, state, *placement.replicate((images, labels.astype(np.int32))),
                         config.eval_batch_size, placement)
    step = meta["progress"]["step"] if meta.get("progress") else 0
    return {"epoch": meta["epoch"] - 1, "steps_after": step,
            "test_loss": loss, "test_acc": acc, "test_error": 1 - acc,
            "params": count_params(state["params"])}
