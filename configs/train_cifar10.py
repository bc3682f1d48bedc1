"""Retrain a genotype on CIFAR-10 as in the paper (SPEC §6): C=36, 20 cells, 600 epochs.

    python -m prdarts_jax.train --config configs/train_cifar10.py --config.genotype=DL2 \
        --workdir runs/dl2_cifar10
    python -m prdarts_jax.evaluate --workdir runs/dl2_cifar10

`--config.genotype` takes DL1, DL2, DR, UR, DARTS_V1, DARTS_V2, PDARTS or the path of a
genotype.json written by a search. Batch 96, SGD lr 0.025 cosine to 0, cutout 16, drop path 0.3,
auxiliary head weight 0.4; the reported number is the mean test error of the last 5 epochs.
Expected cost: not measured (no GPU run of this implementation yet, and the paper gives no
retraining time). The run is 600 epochs × 521 steps of batch 96 = 312,600 steps of a 4.0M-param
network; expect on the order of a GPU-day or more. Checkpoints every epoch, so it can be resumed.
"""

from prdarts_jax.train.config import base_config


def get_config():
    return base_config()
