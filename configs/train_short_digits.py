"""The ablation's short retraining on digits (`python -m prdarts_jax.ablate`'s default for a
search on digits): configs/train_digits.py's tiny network (C=8, 3 cells, 8×8 inputs, no cutout)
for 4 epochs instead of 15, the test set evaluated in the last 2 (their mean error is reported).

A cheap proxy that ranks genotypes, not a converged accuracy (train_digits reaches 0.96 in 15
epochs). Expected cost: about 30 s per genotype on a 2-core CPU, most of it compiling.
"""

from prdarts_jax.train.config import base_config


def get_config():
    config = base_config()
    config.dataset = "digits"
    config.genotype = "DL2"          # the ablation passes each search's genotype.json
    config.channels = 8
    config.layers = 3
    config.epochs = 4
    config.final_epochs = 2
    config.eval_every = 4
    config.batch_size = 64
    config.lr = 0.05
    config.cutout = 0
    config.log_every = 0
    return config
