"""python -m prdarts_jax.ablation: see `prdarts_jax.ablation.cli`."""

from prdarts_jax.ablation.cli import main

main()
