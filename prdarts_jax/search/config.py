"""The search configuration: the base ConfigDict, and its validation before anything compiles.

Every check raises `ConfigError` with one line naming the config key and what to do.
"""

from __future__ import annotations

from typing import Sequence

import ml_collections

from prdarts_jax.errors import ConfigError
from prdarts_jax.models.formulations import IMPLS
from prdarts_jax.optim import LR_SCHEDULES
from prdarts_jax.runtime import config_checks, parallel
from prdarts_jax.runtime.config_checks import check_dataset, need
from prdarts_jax.search.batch_size.controller import validate_limits
from prdarts_jax.search.bilevel import Hyper
from prdarts_jax.search.pools import validate_schedule
from prdarts_jax.space.genotypes import EDGE_SCORES
from prdarts_jax.space.spaces import PRESETS, SearchSpace, get_space


def base_config() -> ml_collections.ConfigDict:
    """The paper's search (SPEC §3–4) on CIFAR-10 in the DL space; variants override fields."""
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.dataset = "cifar10"
    c.data_dir = ""                  # empty: $TFDS_DATA_DIR or ~/tensorflow_datasets
    c.train_portion = 0.5            # first half trains weights, second half trains α
    c.space = "DL"
    c.restrictions = ml_collections.ConfigDict()   # unset: the preset's value
    for key in ("min_k", "max_k", "max_dil", "max_len", "max_sum", "max_width"):
        c.restrictions[key] = ml_collections.config_dict.placeholder(int)
    c.channels = 16
    c.layers = 8
    c.cell_output = "concat"         # or "mean" (the paper's prose)
    c.schedule = ml_collections.ConfigDict()
    c.schedule.epochs = (15, 15, 10, 10, 10, 10, 10, 10, 10)
    c.schedule.grace = (5, 5, 3, 3, 3, 3, 3, 3, 3)
    c.schedule.morphs = (3, 3, 3, 3, 3, 0, 0, 0, 0)
    c.schedule.keep = (6, 6, 6, 6, 6, 4, 3, 2, 1)
    c.batch_size = 64                # the fixed batch size when batch.variable is False
    c.batch = ml_collections.ConfigDict()   # the paper's memory-driven batch size (SPEC §5)
    c.batch.variable = True
    c.batch.min = 24
    c.batch.step = 8
    c.batch.max = 128
    c.batch.interval = 5             # steps between memory readings
    c.batch.target = 0.95            # fraction of the memory budget to fill
    c.batch.memory_budget_mb = 0     # 0: the device's limit (GPU/TPU), half the RAM on a CPU
    c.batch.compile_ahead = 1        # threads compiling the sizes b is predicted to reach; 0: off
    c.eval_batch_size = 256
    c.eval_max_samples = 0           # 0: evaluate on the whole α half each epoch
    c.max_steps_per_epoch = 0        # 0: full epochs; >0 truncates (smoke runs)
    c.lr_max = 0.025
    c.lr_min = 0.01
    c.lr_schedule = "pytorch"        # DARTS' per-epoch cosine; "reach_min": last epoch at lr_min
    c.genotype_edge_score = "max_weight"   # SPEC §4; "group_mass": see space.genotypes.EDGE_SCORES
    c.momentum = 0.9
    c.weight_decay = 3e-4
    c.grad_clip = 5.0
    c.alpha_lr = 6e-4
    c.alpha_beta1 = 0.5
    c.alpha_beta2 = 0.999
    c.alpha_weight_decay = 1e-3
    c.alpha_grad_clip = 5.0
    c.alpha_init_scale = 1e-3
    c.max_tries = 250
    c.revisit_after = 200
    c.reinit_morphed_every_cycle = False   # True reproduces the original release
    c.depthwise_impl = ""            # "": the backend's default (models.formulations.default_impl)
    c.pool_impl = ""                 # (see models.formulations.IMPLS; native ones compile faster on CPU)
    c.num_devices = 0                # devices of the data-parallel mesh; 0: all (every host)
    c.compilation_cache_dir = "~/.cache/prdarts_jax/xla"   # "": leave JAX's setting alone
    c.fuse_grad_programs = False     # one gradient program for both steps (halves CPU compiles)
    c.log_every = 50
    c.allow_config_changes = False   # on resume, accept changed cycles.SAFE_CHANGES keys
    return c


def hyper(config: ml_collections.ConfigDict) -> Hyper:
    return Hyper(config.lr_max, config.lr_min, config.momentum, config.weight_decay,
                 config.grad_clip, config.alpha_lr, (config.alpha_beta1, config.alpha_beta2),
                 config.alpha_weight_decay, config.alpha_grad_clip)


def search_space(config: ml_collections.ConfigDict) -> SearchSpace:
    overrides = {k: v for k, v in config.restrictions.items() if v is not None}
    try:
        return get_space(config.space, **overrides)
    except ValueError as err:
        raise ConfigError(f"config.space / config.restrictions: {err}") from None


def validate(config: ml_collections.ConfigDict) -> None:
    """Raises ConfigError on the first bad value."""
    check_dataset(config)
    need(config.space.upper() in PRESETS,
         f"config.space={config.space!r} is unknown; use one of {sorted(PRESETS)}")
    search_space(config)
    try:
        validate_schedule(config.schedule.epochs, config.schedule.grace, config.schedule.morphs,
                          config.schedule.keep)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    need(0 < config.train_portion < 1,
         f"config.train_portion={config.train_portion} must lie strictly between 0 and 1")
    need(config.channels >= 2, f"config.channels={config.channels} must be >= 2")
    need(config.layers >= 3, f"config.layers={config.layers} must be >= 3 (two reduction cells)")
    need(config.cell_output in ("concat", "mean"),
         f"config.cell_output={config.cell_output!r} must be 'concat' or 'mean'")
    if config.batch.variable:
        try:
            validate_limits(config.batch.min, config.batch.step, config.batch.max,
                            config.batch.interval, config.batch.target)
        except ValueError as err:
            raise ConfigError(str(err)) from None
    need(config.batch.memory_budget_mb >= 0, "config.batch.memory_budget_mb must be >= 0")
    need(config.batch.compile_ahead >= 0,
         f"config.batch.compile_ahead={config.batch.compile_ahead} must be >= 0 (0: off)")
    for key in ("batch_size", "eval_batch_size"):
        need(config[key] >= 1, f"config.{key}={config[key]} must be >= 1")
    need(config.max_steps_per_epoch >= 0 and config.eval_max_samples >= 0,
         "config.max_steps_per_epoch and config.eval_max_samples must be >= 0 (0: no limit)")
    need(0 < config.revisit_after <= config.max_tries,
         f"config.revisit_after={config.revisit_after} must be in 1..config.max_tries")
    for key, primitive in (("depthwise_impl", "depthwise_conv"), ("pool_impl", "max_pool3")):
        need(config[key] in ("",) + IMPLS[primitive],
             f"config.{key}={config[key]!r} is unknown; use one of {list(IMPLS[primitive])} "
             "or '' for the backend default")
    for key in ("lr_max", "alpha_lr"):
        need(config[key] > 0, f"config.{key}={config[key]} must be > 0")
    need(0 <= config.lr_min <= config.lr_max,
         f"config.lr_min={config.lr_min} must be in 0..config.lr_max")
    need(config.genotype_edge_score in EDGE_SCORES,
         f"config.genotype_edge_score={config.genotype_edge_score!r} is unknown; use one of "
         f"{list(EDGE_SCORES)}")
    need(config.lr_schedule in LR_SCHEDULES,
         f"config.lr_schedule={config.lr_schedule!r} is unknown; use one of {list(LR_SCHEDULES)}")


def check_devices(config: ml_collections.ConfigDict,
                  batch_keys: Sequence[str] | None = None) -> parallel.Placement:
    """The placement of `config.num_devices`; by default every batch size the search's steps
    can take (the variable batch size's grid, or the fixed size) must divide by the devices."""
    if batch_keys is None:
        batch_keys = (("batch.min", "batch.step", "batch.max") if config.batch.variable
                      else ("batch_size",))
    return config_checks.check_devices(config, batch_keys)
