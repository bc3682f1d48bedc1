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
from prdarts_jax.runtime.config_checks import check_dataset, check_types, need
from prdarts_jax.runtime.flags import flatten
from prdarts_jax.runtime.xla_options import check_fusions
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
    c.schedule.cells = ()            # beyond the paper: cells per cycle; empty: config.layers
    c.schedule.tau = ()              # Gumbel temperature per cycle; empty: 1.0 (relaxation=gumbel)
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
    # formulations (models.formulations.IMPLS); "": the backend's default; "native": C++ (CPU)
    c.depthwise_impl = c.pool_impl = c.bn_impl = c.sgd_impl = c.edge_sum_impl = ""
    c.num_devices = 0                # devices of the data-parallel mesh; 0: all (every host)
    c.compilation_cache_dir = "~/.cache/prdarts_jax/xla"   # "": leave JAX's setting alone
    c.cpu_library_fusions = "auto"   # XLA:CPU's YNNPACK fusions (runtime/xla_options.py)
    c.fuse_grad_programs = False     # one gradient program for both steps (halves CPU compiles)
    c.log_every = 50
    _beyond_the_paper(c)
    c.allow_config_changes = False   # on resume, accept changed cycles.SAFE_CHANGES keys
    return c


def _beyond_the_paper(c: ml_collections.ConfigDict) -> None:
    """Section 5's future work as options (docs/variants.md); the defaults are the paper's."""
    c.morph_selection = "uniform"    # or "weighted": morphisms by how their children fared
    c.morph_temperature = 1.0        # τ of the weighted selection's softmax(score / τ)
    c.morph_floor = 0.05             # weighted: each legal morphism keeps this share at least
    c.relaxation = "softmax"         # or "gumbel": Concrete relaxation of the mixed op (GDAS)
    c.gumbel_hard = False            # gumbel: a hard (straight-through) one-hot sample
    c.cost_penalty = 0.0             # λ of the expected-cost term in the α loss; 0: off
    c.cost_measure = "madds"         # what the penalty counts: "madds" or "params"
    c.genotype_max_skips = ml_collections.config_dict.placeholder(int)  # unset: no limit


FIELD_DOCS: dict[str, str] = {
    "seed": "PRNG seed of the search (initialisation, data order, α, sampled morphisms)",
    "dataset": "cifar10, cifar100 or digits (offline)",
    "data_dir": "TFDS data directory; empty: $TFDS_DATA_DIR or ~/tensorflow_datasets",
    "train_portion": "fraction of the training split that trains the weights; the rest trains α",
    "space": "search space: DL, DR or UR (SPEC §2)",
    "restrictions.min_k": "smallest conv kernel; unset: the space's value",
    "restrictions.max_k": "largest conv kernel; unset: the space's value",
    "restrictions.max_dil": "largest dilation; unset: the space's value",
    "restrictions.max_len": "most expansion layers of a conv; unset: the space's value",
    "restrictions.max_sum": "largest sum of a conv's expansion list; unset: the space's value",
    "restrictions.max_width": "largest entry of a conv's expansion list; unset: the space's value",
    "channels": "initial channels C of the supernet",
    "layers": "cells of the supernet (reductions at 1/3 and 2/3)",
    "cell_output": "concat (the release) or mean (the paper's prose) of the nodes",
    "schedule.epochs": "epochs per cycle; its length is the number of cycles",
    "schedule.grace": "epochs per cycle that train weights only, before the α steps start",
    "schedule.morphs": "children added per edge at the end of each cycle",
    "schedule.keep": "ops kept per edge at the end of each cycle (the last: 1)",
    "schedule.cells": "cells of the supernet per cycle (progressive deepening); empty: layers",
    "schedule.tau": "Gumbel-softmax temperature per cycle (relaxation=gumbel); empty: 1.0",
    "batch_size": "the fixed batch size (global, over all devices) when batch.variable is False",
    "batch.variable": "the paper's memory-driven batch size (SPEC §5)",
    "batch.min": "smallest batch size of the variable rule",
    "batch.step": "step between batch sizes of the variable rule",
    "batch.max": "largest batch size of the variable rule",
    "batch.interval": "steps between memory readings",
    "batch.target": "fraction of the memory budget to fill",
    "batch.memory_budget_mb": "memory budget in MiB; 0: the device's limit (half the RAM on a CPU)",
    "batch.compile_ahead": "threads compiling the batch sizes b is predicted to reach; 0: off",
    "eval_batch_size": "batch size of the α-half validation after each epoch",
    "eval_max_samples": "validate on at most this many α-half samples; 0: all",
    "max_steps_per_epoch": "truncate every epoch to this many steps (smoke runs); 0: full epochs",
    "lr_max": "weights' learning rate at the start of each cycle",
    "lr_min": "weights' learning rate at the end of the cosine",
    "lr_schedule": "pytorch (DARTS' per-epoch cosine) or reach_min (last epoch at lr_min)",
    "genotype_edge_score": "how the final genotype ranks edges: max_weight (SPEC §4) or group_mass",
    "momentum": "SGD momentum of the weights",
    "weight_decay": "weights' decay (coupled, as PyTorch's SGD)",
    "grad_clip": "global norm clip of the weights' gradients",
    "alpha_lr": "Adam learning rate of α",
    "alpha_beta1": "Adam β1 of α",
    "alpha_beta2": "Adam β2 of α",
    "alpha_weight_decay": "α's weight decay",
    "alpha_grad_clip": "global norm clip of α's gradients",
    "alpha_init_scale": "std of α's random initialisation",
    "max_tries": "morphism draws per edge before giving up on a child",
    "revisit_after": "draws after which an op dropped earlier may come back",
    "reinit_morphed_every_cycle": "re-morph children from their lineage every cycle (the release)",
    "depthwise_impl": "formulation of the depthwise conv; empty: the backend's default",
    "pool_impl": "formulation of the 3x3 pools; empty: the backend's default",
    "bn_impl": "formulation of the BatchNorm, training and evaluation mode (xla, native); empty: "
               "the backend's default",
    "sgd_impl": "formulation of the weights' SGD update (xla: optax's chain, native: C++ calls "
                "for all leaves); empty: the backend's default",
    "edge_sum_impl": "formulation of a mixed edge's α-weighted sum of its ops (xla, native); "
                     "empty: the backend's default",
    "num_devices": "devices of the data-parallel mesh; 0: all (every host)",
    "compilation_cache_dir": "persistent XLA compilation cache; empty: leave JAX's setting alone",
    "cpu_library_fusions": "XLA:CPU fusions run by YNNPACK: auto (none), none, eltwise or xla "
                           "(XLA's own choice)",
    "fuse_grad_programs": "one gradient program for the α and weight steps (halves CPU compiles)",
    "log_every": "steps between log lines when not on a terminal; 0: none",
    "morph_selection": "uniform (the paper) or weighted: morphisms drawn by their children's fate",
    "morph_temperature": "τ of the weighted morphism selection, softmax(score / τ)",
    "morph_floor": "weighted selection: the least share of probability any legal morphism keeps",
    "relaxation": "mixed op's relaxation: softmax (the paper) or gumbel (Concrete, as GDAS)",
    "gumbel_hard": "relaxation=gumbel: a hard one-hot sample (straight-through) instead of soft",
    "cost_penalty": "λ of the expected cost (cost_measure) under softmax(α) in the α loss; 0: off",
    "cost_measure": "what cost_penalty counts per op: madds or params",
    "genotype_max_skips": "at most this many skip connections in the normal cell; unset: any",
    "allow_config_changes": "on resume, accept changed keys that are safe to change",
}
"""What each field of `base_config` means (`--help` lists them; a test keeps it complete)."""


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
    check_types(config, base_config())
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
    for key, primitive in (("depthwise_impl", "depthwise_conv"), ("pool_impl", "max_pool3"),
                           ("bn_impl", "batch_norm"), ("sgd_impl", "sgd_update"),
                           ("edge_sum_impl", "weighted_sum")):
        need(config[key] in ("",) + IMPLS[primitive],
             f"config.{key}={config[key]!r} is unknown; use one of {list(IMPLS[primitive])} "
             "or '' for the backend default")
    check_fusions(config.cpu_library_fusions)
    for key in ("lr_max", "alpha_lr"):
        need(config[key] > 0, f"config.{key}={config[key]} must be > 0")
    need(0 <= config.lr_min <= config.lr_max,
         f"config.lr_min={config.lr_min} must be in 0..config.lr_max")
    need(config.genotype_edge_score in EDGE_SCORES,
         f"config.genotype_edge_score={config.genotype_edge_score!r} is unknown; use one of "
         f"{list(EDGE_SCORES)}")
    _validate_variants(config)
    need(config.lr_schedule in LR_SCHEDULES,
         f"config.lr_schedule={config.lr_schedule!r} is unknown; use one of {list(LR_SCHEDULES)}")


def _validate_variants(config: ml_collections.ConfigDict) -> None:
    """The options beyond the paper (docs/variants.md)."""
    _validate_variant_schedules(config)
    for key, allowed in (("morph_selection", ("uniform", "weighted")),
                         ("relaxation", ("softmax", "gumbel")),
                         ("cost_measure", ("madds", "params"))):
        need(config[key] in allowed,
             f"config.{key}={config[key]!r} is unknown; use one of {list(allowed)}")
    need(config.morph_temperature > 0,
         f"config.morph_temperature={config.morph_temperature} must be > 0")
    need(0 <= config.morph_floor < 1,
         f"config.morph_floor={config.morph_floor} must be in [0, 1)")
    need(config.cost_penalty >= 0, f"config.cost_penalty={config.cost_penalty} must be >= 0")
    need(config.genotype_max_skips is None or config.genotype_max_skips >= 0,
         f"config.genotype_max_skips={config.genotype_max_skips} must be >= 0 (unset: no limit)")
    _refuse_idle_options(config)


def _validate_variant_schedules(config: ml_collections.ConfigDict) -> None:
    n_cycles = len(config.schedule.epochs)
    for key in ("cells", "tau"):
        values = tuple(config.schedule[key])
        need(not values or len(values) == n_cycles,
             f"config.schedule.{key} has {len(values)} entries for {n_cycles} cycles; give one "
             f"per cycle, or () for the default")
    cells = tuple(config.schedule.cells)
    need(all(isinstance(c, int) and not isinstance(c, bool) and c >= 3 for c in cells),
         f"config.schedule.cells={cells}: every cycle needs a whole number >= 3 of cells (two "
         "reduction cells)")
    need(all(a <= b for a, b in zip(cells, cells[1:])),
         f"config.schedule.cells={cells}: the supernet may only grow or stay from cycle to "
         "cycle; make the depths non-decreasing")
    need(all(t > 0 for t in config.schedule.tau),
         f"config.schedule.tau={tuple(config.schedule.tau)}: temperatures must be > 0")


_IDLE_UNLESS = (
    ("schedule.tau", "relaxation", "gumbel"),
    ("gumbel_hard", "relaxation", "gumbel"),
    ("morph_temperature", "morph_selection", "weighted"),
    ("morph_floor", "morph_selection", "weighted"),
)
"""(option, switch, value): the option acts only while the switch has that value."""


def _refuse_idle_options(config: ml_collections.ConfigDict) -> None:
    """An option set away from its default while its switch is off would change nothing: a
    run (or an ablation entry) would be the paper's under another name."""
    values, defaults = flatten(config), flatten(base_config())
    for key, switch, on in _IDLE_UNLESS:
        need(values[key] == defaults[key] or values[switch] == on,
             f"config.{key}={values[key]!r} has no effect while config.{switch}="
             f"{values[switch]!r}; set --config.{switch}={on} or leave {key} at its default")
    need(config.cost_measure == "madds" or config.cost_penalty > 0,
         f"config.cost_measure={config.cost_measure!r} has no effect while "
         "config.cost_penalty=0; set a penalty > 0 or leave cost_measure at its default")


def check_devices(config: ml_collections.ConfigDict,
                  batch_keys: Sequence[str] | None = None) -> parallel.Placement:
    """The placement of `config.num_devices`; by default every batch size the search's steps
    can take (the variable batch size's grid, or the fixed size) must divide by the devices."""
    if batch_keys is None:
        batch_keys = (("batch.min", "batch.step", "batch.max") if config.batch.variable
                      else ("batch_size",))
    return config_checks.check_devices(config, batch_keys)
