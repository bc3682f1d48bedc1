"""CLI: python -m prdarts_jax.train --config configs/train_cifar10.py --config.genotype=DL2 \
--workdir runs/dl2

Retrains a genotype (a built-in name or a genotype.json path) from scratch and evaluates it on
the test set (see `train.loop.train_and_evaluate`); re-running with the same workdir resumes.
`--count_params` prints `params: N` (without the auxiliary head) and exits without training;
`--param_table` prints the published cells' parameter counts at C=36, 20 cells (no --config).
"""

from prdarts_jax.train.cli import run

run()
