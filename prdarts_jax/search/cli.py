"""CLI: python -m prdarts_jax.search --config configs/dl.py --workdir runs/dl

Runs a PR-DARTS search (see `search.loop.run_search`); `--config.<key>=value` overrides any field.
"""

from __future__ import annotations

from absl import app, flags
from ml_collections import config_flags

from prdarts_jax.runtime.cli import run_main

_CONFIG = config_flags.DEFINE_config_file("config", None, "Search config file.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for everything of this run.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    run_main(_search)


def _search() -> None:
    from prdarts_jax.runtime import xla_options
    xla_options.for_search(_CONFIG.value.depthwise_impl)
    from prdarts_jax.runtime.distributed import maybe_initialize
    maybe_initialize()
    from prdarts_jax.runtime.interrupts import FaultHook
    from prdarts_jax.search.loop import run_search
    run_search(_CONFIG.value, _WORKDIR.value, faults=FaultHook.from_environ())

