"""CLI: python -m prdarts_jax.train --config configs/train_cifar10.py --config.genotype=DL2 \
--workdir runs/dl2

Retrains a genotype (a built-in name or a genotype.json path) from scratch and evaluates it on
the test set (see `train.loop.train_and_evaluate`); re-running with the same workdir resumes.
`--count_params` prints `params: N` (without the auxiliary head) and exits without training;
`--param_table` prints the published cells' parameter counts at C=36, 20 cells (no --config).
"""

from __future__ import annotations

from absl import app, flags
from ml_collections import config_flags

from prdarts_jax.runtime.cli import run_main

_CONFIG = config_flags.DEFINE_config_file("config", None, "Retraining config file.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for everything of this run.")
_COUNT = flags.DEFINE_bool("count_params", False,
                           "Print `params: N` (without the auxiliary head) and exit.")
_TABLE = flags.DEFINE_bool("param_table", False,
                           "Print the published cells' parameter counts (C=36, 20 cells, 32x32 "
                           "inputs, auxiliary head excluded) and exit; needs no --config.")


def _table() -> None:
    from prdarts_jax.models.network import param_counts, param_table
    print("Final networks, C=36, 20 cells, 32×32 inputs, auxiliary head excluded:\n")
    print(param_table(param_counts()))


def _count() -> None:
    from prdarts_jax.train.loop import count_params_of
    print(f"params: {count_params_of(_CONFIG.value)}")


def _train() -> None:
    if not _WORKDIR.value:
        raise ValueError("--workdir is required (unless --count_params)")
    from prdarts_jax.runtime import xla_options
    xla_options.for_retraining()
    from prdarts_jax.runtime.distributed import maybe_initialize
    maybe_initialize()
    from prdarts_jax.runtime.interrupts import FaultHook
    from prdarts_jax.train.loop import train_and_evaluate
    train_and_evaluate(_CONFIG.value, _WORKDIR.value, faults=FaultHook.from_environ())


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if _TABLE.value:
        run_main(_table)
        return
    if _CONFIG.value is None:
        raise app.UsageError("--config is required (unless --param_table)")
    run_main(_count if _COUNT.value else _train)

