"""python -m prdarts_jax.space [STEPS]: the sizes of DARTS' 8-op space and of each preset."""

from __future__ import annotations

import argparse

from prdarts_jax.space.spaces import format_table, size_table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m prdarts_jax.space", description=__doc__)
    parser.add_argument("steps", nargs="?", type=int, default=5,
                        help="intermediate nodes per cell (default 5, the paper's)")
    steps = parser.parse_args(argv).steps
    print(format_table(size_table(steps), steps))


main()
