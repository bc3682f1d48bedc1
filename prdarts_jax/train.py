"""CLI: python -m prdarts_jax.train --config configs/train_cifar10.py --config.genotype=DL2 \
--workdir runs/dl2

Retrains a genotype (a built-in name or a genotype.json path) from scratch and evaluates it on
the test set (see `training.train_and_evaluate`); re-running with the same workdir resumes.
`--count_params` prints `params: N` (without the auxiliary head) and exits without training.
"""

from __future__ import annotations

from absl import app, flags
from ml_collections import config_flags

from prdarts_jax import host_memory
from prdarts_jax.cli import run_main

_CONFIG = config_flags.DEFINE_config_file("config", None, "Retraining config file.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for everything of this run.")
_COUNT = flags.DEFINE_bool("count_params", False,
                           "Print `params: N` (without the auxiliary head) and exit.")
flags.mark_flags_as_required(["config"])


def _count() -> None:
    from prdarts_jax.training import count_params_of
    print(f"params: {count_params_of(_CONFIG.value)}")


def _train() -> None:
    if not _WORKDIR.value:
        raise ValueError("--workdir is required (unless --count_params)")
    from prdarts_jax import xla_options
    xla_options.for_retraining()
    from prdarts_jax.distributed import maybe_initialize
    maybe_initialize()
    from prdarts_jax.training import train_and_evaluate
    train_and_evaluate(_CONFIG.value, _WORKDIR.value)


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    run_main(_count if _COUNT.value else _train)


if __name__ == "__main__":
    host_memory.restart()
    app.run(main)
