"""CLI: python -m prdarts_jax.train --config configs/train_cifar10.py --config.genotype=DL2 \
--workdir runs/dl2  (or prdarts-train)

Retrains a genotype (a built-in name or a genotype.json path) from scratch and evaluates it on
the test set (see `train.loop.train_and_evaluate`); re-running with the same workdir resumes.
`--count_params` prints `params: N (4.02 M), MAdds: N (0.65 G)` (without the auxiliary head;
MAdds at batch 1 in inference, convs and the linear layer, see `models.cost`) and exits
without training;
`--param_table` prints the published cells' parameter counts at C=36, 20 cells (no --config).
"""

from __future__ import annotations

from absl import app, flags
from ml_collections import config_flags

from prdarts_jax.runtime import host_memory
from prdarts_jax.runtime.cli import run_main
from prdarts_jax.runtime.flags import Program, fail, make_parser

_CONFIG = config_flags.DEFINE_config_file("config", None,
                                          "Retraining config file (configs/train_*.py).",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for everything of this run; the "
                               "same workdir again resumes.")
_COUNT = flags.DEFINE_bool("count_params", False,
                           "Print `params: N (4.02 M), MAdds: N (0.65 G)` of the final "
                           "network (without the auxiliary head; multiply-adds at batch 1 in "
                           "inference, of the convs and the linear layer) and exit.")
_TABLE = flags.DEFINE_bool("param_table", False,
                           "Print the published cells' parameter counts (C=36, 20 cells, 32x32 "
                           "inputs, auxiliary head excluded) and exit; needs no --config.")
PROGRAM = Program(__doc__, ("config", "workdir", "count_params", "param_table"),
                  config_module="prdarts_jax.train.config")


def _table() -> None:
    from prdarts_jax.models.network import param_counts, param_table
    print("Final networks, C=36, 20 cells, 32×32 inputs, auxiliary head excluded:\n")
    print(param_table(param_counts()))


def _count() -> None:
    from prdarts_jax.models.cost import human
    from prdarts_jax.train.loop import cost_of, count_params_of
    params, madds = count_params_of(_CONFIG.value), cost_of(_CONFIG.value).madds
    print(f"params: {params} ({human(params)}), MAdds: {madds} ({human(madds)})")


def _train() -> None:
    if not _WORKDIR.value:
        fail("--workdir is required (unless --count_params); --help shows an example")
    from prdarts_jax.loops.progress import heartbeat_seconds
    heartbeat_seconds()   # a bad $PRDARTS_HEARTBEAT_SECONDS stops here, before any work
    from prdarts_jax.runtime import xla_options
    xla_options.for_retraining()
    from prdarts_jax.runtime.distributed import maybe_initialize
    maybe_initialize()
    from prdarts_jax.runtime.interrupts import FaultHook
    from prdarts_jax.train.loop import train_and_evaluate
    train_and_evaluate(_CONFIG.value, _WORKDIR.value, faults=FaultHook.from_environ())


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        fail(f"unexpected arguments {argv[1:]}; --help lists the flags")
    if _TABLE.value:
        run_main(_table)
        return
    if _CONFIG.value is None:
        fail("--config is required (unless --param_table); --help shows an example")
    run_main(_count if _COUNT.value else _train)


def run() -> None:
    """The console script `prdarts-train`."""
    host_memory.restart()
    app.run(main, flags_parser=make_parser(PROGRAM))

