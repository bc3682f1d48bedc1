"""The retraining configuration (SPEC §6): the base ConfigDict and its validation.

Every check raises `ConfigError` with one line naming the config key and what to do, before any
data is loaded or anything compiles.
"""

from __future__ import annotations

import os

import ml_collections

from prdarts_jax.errors import ConfigError
from prdarts_jax.models.network import check_genotype
from prdarts_jax.runtime.config_checks import check_dataset, check_types, need
from prdarts_jax.space.genotypes import Genotype, load_genotype

__all__ = ["FIELD_DOCS", "ConfigError", "base_config", "genotype_of", "validate"]


def base_config() -> ml_collections.ConfigDict:
    """DARTS' evaluation setting on CIFAR-10 with the DL2 cell; variants override fields."""
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.dataset = "cifar10"
    c.data_dir = ""                  # empty: $TFDS_DATA_DIR or ~/tensorflow_datasets
    c.genotype = "DL2"               # a built-in name or a path to a genotype.json
    c.channels = 36
    c.layers = 20
    c.epochs = 600
    c.batch_size = 96
    c.eval_batch_size = 500
    c.lr = 0.025                     # cosine per epoch from lr to lr_min over `epochs`
    c.lr_min = 0.0
    c.momentum = 0.9
    c.weight_decay = 3e-4            # coupled (added to the gradient), as PyTorch's SGD
    c.grad_clip = 5.0                # global norm
    c.cutout = 16
    c.flip = True
    c.aux_weight = 0.4               # 0 drops the auxiliary head altogether
    c.drop_path = 0.3                # drop probability rises linearly 0 -> this over the epochs
    c.eval_every = 10                # test-set evaluation every N epochs ...
    c.final_epochs = 5               # ... and in each of the last N; their mean error is reported
    c.keep_checkpoints = 3
    c.num_devices = 0                # devices of the data-parallel mesh; 0: all (every host)
    c.max_steps_per_epoch = 0        # 0: full epochs; >0 truncates (smoke runs)
    c.log_every = 100                # steps between log lines when not on a terminal; 0: none
    return c


FIELD_DOCS: dict[str, str] = {
    "seed": "PRNG seed (initialisation, data order, augmentation, drop path)",
    "dataset": "cifar10, cifar100 or digits (offline)",
    "data_dir": "TFDS data directory; empty: $TFDS_DATA_DIR or ~/tensorflow_datasets",
    "genotype": "a built-in cell (DL1, DL2, DR, UR, DARTS_V1, DARTS_V2, PDARTS) or a genotype.json",
    "channels": "initial channels C of the final network",
    "layers": "cells of the final network",
    "epochs": "epochs of the retraining",
    "batch_size": "global batch size (over all devices)",
    "eval_batch_size": "batch size of the test-set evaluation",
    "lr": "initial learning rate (cosine per epoch down to lr_min)",
    "lr_min": "learning rate at the end of the cosine",
    "momentum": "SGD momentum",
    "weight_decay": "weight decay (coupled, as PyTorch's SGD)",
    "grad_clip": "global norm clip of the gradients",
    "cutout": "cutout square side in pixels; 0: none",
    "flip": "random horizontal flips",
    "aux_weight": "weight of the auxiliary head's loss; 0: no auxiliary head",
    "drop_path": "drop-path probability reached at the last epoch (rises linearly from 0)",
    "eval_every": "test-set evaluation every N epochs",
    "final_epochs": "also evaluate each of the last N epochs; their mean error is reported",
    "keep_checkpoints": "checkpoints kept in the workdir",
    "num_devices": "devices of the data-parallel mesh; 0: all (every host)",
    "max_steps_per_epoch": "truncate every epoch to this many steps (smoke runs); 0: full epochs",
    "log_every": "steps between log lines when not on a terminal; 0: none",
}
"""What each field of `base_config` means (`--help` lists them; a test keeps it complete)."""


def genotype_of(config: ml_collections.ConfigDict) -> Genotype:
    """The genotype named by `config.genotype`, or ConfigError."""
    if os.path.isdir(str(config.genotype)):
        inside = os.path.join(str(config.genotype), "genotype.json")
        raise ConfigError(f"config.genotype={config.genotype!r} is a directory; "
                          + (f"pass {inside}" if os.path.isfile(inside) else
                             "pass a genotype.json (a finished search writes one)"))
    try:
        genotype = load_genotype(str(config.genotype))
        check_genotype(genotype)
    except ValueError as err:
        raise ConfigError(f"config.genotype={config.genotype!r}: {err}") from None
    return genotype


def validate(config: ml_collections.ConfigDict) -> None:
    """Raises ConfigError on the first bad value."""
    check_types(config, base_config())
    check_dataset(config)
    genotype_of(config)
    need(config.channels >= 2, f"config.channels={config.channels} must be >= 2")
    need(config.layers >= 3, f"config.layers={config.layers} must be >= 3 (two reduction cells)")
    for key in ("epochs", "batch_size", "eval_batch_size", "eval_every", "final_epochs",
                "keep_checkpoints"):
        need(config[key] >= 1, f"config.{key}={config[key]} must be >= 1")
    need(config.lr > 0, f"config.lr={config.lr} must be > 0")
    need(0 <= config.lr_min <= config.lr, f"config.lr_min={config.lr_min} must be in 0..config.lr")
    need(0 <= config.momentum < 1, f"config.momentum={config.momentum} must be in [0, 1)")
    need(config.weight_decay >= 0, f"config.weight_decay={config.weight_decay} must be >= 0")
    need(config.grad_clip > 0, f"config.grad_clip={config.grad_clip} must be > 0")
    need(config.cutout >= 0, f"config.cutout={config.cutout} must be >= 0 (0: no cutout)")
    need(config.aux_weight >= 0, f"config.aux_weight={config.aux_weight} must be >= 0 "
         "(0: no auxiliary head)")
    need(0 <= config.drop_path < 1, f"config.drop_path={config.drop_path} must be in [0, 1)")
    need(config.max_steps_per_epoch >= 0,
         f"config.max_steps_per_epoch={config.max_steps_per_epoch} must be >= 0 (0: no limit)")
    need(config.log_every >= 0, f"config.log_every={config.log_every} must be >= 0")
