"""python -m prdarts_jax.space [STEPS]: the sizes of DARTS' 8-op space and of each preset, and
how many convs (and cells) lie within STEPS morphisms of the initial 3x3 conv."""

from __future__ import annotations

import argparse

from prdarts_jax.runtime.flags import ArgumentParser
from prdarts_jax.space.spaces import format_table, size_table


def _steps(text: str) -> int:
    try:
        steps = int(text)
    except ValueError:
        steps = -1
    if not 0 <= steps <= 20:
        raise argparse.ArgumentTypeError(f"{text!r} must be an integer 0..20")
    return steps


def main(argv: list[str] | None = None) -> None:
    parser = ArgumentParser(prog="python -m prdarts_jax.space", description=__doc__)
    parser.add_argument("steps", nargs="?", type=_steps, default=5,
                        help="morphism steps from the initial conv for the 'within' columns: "
                             "an integer 0..20 (default 5)")
    steps = parser.parse_args(argv).steps
    print(format_table(size_table(steps), steps))


if __name__ == "__main__":
    main()
