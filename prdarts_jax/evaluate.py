"""CLI: python -m prdarts_jax.evaluate --workdir runs/dl2  (or prdarts-evaluate)

Evaluates the latest checkpoint of a training run on the test set (the run's config.json says
which network and dataset) and prints loss, accuracy and error.
"""

from __future__ import annotations

from absl import app, flags

from prdarts_jax.runtime import host_memory
from prdarts_jax.runtime.cli import run_main
from prdarts_jax.runtime.flags import Program, fail, make_parser

_WORKDIR = flags.DEFINE_string("workdir", None, "A training run directory.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Overrides the data_dir of the run's config.")
flags.mark_flags_as_required(["workdir"])
PROGRAM = Program(__doc__, ("workdir", "data_dir"))


def _evaluate() -> None:
    from prdarts_jax.runtime.distributed import maybe_initialize
    maybe_initialize()
    from prdarts_jax.train.evaluate import evaluate_workdir
    r = evaluate_workdir(_WORKDIR.value, _DATA_DIR.value)
    print(f"epoch {r['epoch']}: test loss {r['test_loss']:.4f} accuracy {r['test_acc']:.4f} "
          f"error {r['test_error']:.4f} (params: {r['params']})")


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        fail(f"unexpected arguments {argv[1:]}; --help lists the flags")
    run_main(_evaluate)


def run() -> None:
    """The console script `prdarts-evaluate`."""
    host_memory.restart()
    app.run(main, flags_parser=make_parser(PROGRAM))


if __name__ == "__main__":
    run()
