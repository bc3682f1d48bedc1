"""CLI: python -m prdarts_jax.search --config configs/dl.py --workdir runs/dl  (or prdarts-search)

Runs a PR-DARTS search (see `search.loop.run_search`); `--config.<key>=value` overrides any field.
Running it again on the same workdir resumes an unfinished search.
"""

from __future__ import annotations

from absl import app, flags
from ml_collections import config_flags

from prdarts_jax.runtime import host_memory
from prdarts_jax.runtime.cli import run_main
from prdarts_jax.runtime.flags import Program, fail, make_parser

_CONFIG = config_flags.DEFINE_config_file("config", None, "Search config file (configs/*.py).",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for everything of this run; the "
                               "same workdir again resumes.")
flags.mark_flags_as_required(["config", "workdir"])
PROGRAM = Program(__doc__, ("config", "workdir"), config_module="prdarts_jax.search.config")


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        fail(f"unexpected arguments {argv[1:]}; --help lists the flags")
    run_main(_search)


def run() -> None:
    """The console script `prdarts-search`."""
    host_memory.restart()
    app.run(main, flags_parser=make_parser(PROGRAM))


def _search() -> None:
    from prdarts_jax.loops.progress import heartbeat_seconds
    heartbeat_seconds()   # a bad $PRDARTS_HEARTBEAT_SECONDS stops here, before any work
    from prdarts_jax.runtime import xla_options
    xla_options.for_search(fusions=_CONFIG.value.cpu_library_fusions)
    from prdarts_jax.runtime.distributed import maybe_initialize
    maybe_initialize()
    from prdarts_jax.runtime.interrupts import FaultHook
    from prdarts_jax.search.loop import run_search
    run_search(_CONFIG.value, _WORKDIR.value, faults=FaultHook.from_environ())
