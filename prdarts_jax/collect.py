"""CLI: python -m prdarts_jax.collect runs/grid [--format md|csv] [--out FILE]

Gathers the finished search and retraining workdirs under the given directories into one results
table in the layout of the paper's Table 3 (architecture, test error per dataset as mean ± std
over seeds, parameters, search cost, search space). Unfinished or unreadable workdirs are listed
as skipped, each with a one-line reason. Reads JSON files only: instant, no JAX.
"""

from __future__ import annotations

import sys
from typing import Sequence

from prdarts_jax.analysis.collect import collect
from prdarts_jax.runtime.cli import run_main
from prdarts_jax.runtime.flags import ArgumentParser


def main(argv: Sequence[str] | None = None) -> None:
    parser = ArgumentParser(prog="python -m prdarts_jax.collect",
                                     description=__doc__.split("\n\n")[1])
    parser.add_argument("roots", nargs="+", help="grid roots or any directories of workdirs")
    parser.add_argument("--format", choices=("md", "csv"), default="md")
    parser.add_argument("--cost_unit", choices=("hours", "days"), default="hours",
                        help="search cost in device-hours (default) or device-days")
    parser.add_argument("--with_paper", action="store_true",
                        help="append the paper's PR-DARTS rows of Table 3 for comparison")
    parser.add_argument("--out", default=None, help="write the table here instead of stdout")
    args = parser.parse_args(argv)

    def run() -> None:
        text, skipped = collect(args.roots, args.format, args.cost_unit, args.with_paper)
        if args.out:
            with open(args.out, "w") as f:
                f.write(text)
        else:
            sys.stdout.write(text)
        for line in skipped:
            print(line, file=sys.stderr)

    run_main(run)


if __name__ == "__main__":
    main()
