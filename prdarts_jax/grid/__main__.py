"""python -m prdarts_jax.grid: see `prdarts_jax.grid.cli`."""

from prdarts_jax.grid.cli import main

main()
