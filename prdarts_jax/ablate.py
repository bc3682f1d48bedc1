"""python -m prdarts_jax.ablate (and the console script `prdarts-ablate`): the ablation harness,
see `prdarts_jax.ablation.cli`."""

from prdarts_jax.ablation.cli import main

if __name__ == "__main__":
    main()
