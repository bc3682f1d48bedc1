"""CLI: python -m prdarts_jax.report --workdir runs/dl [--genotype DL2] [--out DIR]

Renders a search workdir into `<workdir>/report/` (or `--out`): one `report.html` that opens
with a summary (the cells found, the final validation accuracy, the final network's parameters,
the search's time and compile share, the config and the command that retrains the genotype),
a paper-style figure (Figure 2, one column wide), the search-statistics dashboard, the cells
as graphs (Figure 3) for the search's genotype and any `--genotype`, the per-edge evolution of
the pools, and TensorBoard scalars and text when tensorboardX is installed. It reads only the
workdir, so it also works on a search still running or stopped part-way (a provisional genotype
then comes from the last finished cycle's α).
"""

from __future__ import annotations

from typing import Sequence

from prdarts_jax.analysis.report import write_report
from prdarts_jax.runtime.cli import run_main
from prdarts_jax.runtime.flags import ArgumentParser


def main(argv: Sequence[str] | None = None) -> None:
    parser = ArgumentParser(prog="python -m prdarts_jax.report",
                            description=__doc__.split("\n\n")[1])
    parser.add_argument("--workdir", required=True, help="a search workdir (holds metrics.jsonl)")
    parser.add_argument("--genotype", action="append", default=[],
                        help="also draw this genotype: a built-in name (DL2, DARTS_V2, ...) or "
                             "a genotype.json path; repeatable")
    parser.add_argument("--out", default=None, help="output directory (default <workdir>/report)")
    args = parser.parse_args(argv)
    run_main(lambda: write_report(args.workdir, args.out, args.genotype))


if __name__ == "__main__":
    main()
