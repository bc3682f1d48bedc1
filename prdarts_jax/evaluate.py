"""CLI: python -m prdarts_jax.evaluate --workdir runs/dl2

Evaluates the latest checkpoint of a training run on the test set (the run's config.json says
which network and dataset) and prints loss, accuracy and error.
"""

from __future__ import annotations

from absl import app, flags

from prdarts_jax.runtime import host_memory
from prdarts_jax.runtime.cli import run_main

_WORKDIR = flags.DEFINE_string("workdir", None, "A training run directory.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Overrides the data_dir of the run's config.")
flags.mark_flags_as_required(["workdir"])


def _evaluate() -> None:
    from prdarts_jax.runtime.distributed import maybe_initialize
    maybe_initialize()
    from prdarts_jax.train.evaluate import evaluate_workdir
    r = evaluate_workdir(_WORKDIR.value, _DATA_DIR.value)
    print(f"epoch {r['epoch']}: test loss {r['test_loss']:.4f} accuracy {r['test_acc']:.4f} "
          f"error {r['test_error']:.4f} (params: {r['params']})")


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    run_main(_evaluate)


if __name__ == "__main__":
    host_memory.restart()
    app.run(main)
