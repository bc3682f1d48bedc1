"""Retrain a genotype on CIFAR-100 with the CIFAR-10 settings (SPEC §6).

    python -m prdarts_jax.train --config configs/train_cifar100.py --config.genotype=DL2 \
        --workdir runs/dl2_cifar100

Only the dataset (and so the classifier, 100 outputs) differs from configs/train_cifar10.py.
Expected cost: not measured; about the same as CIFAR-10 (same images, same network body).
"""

from prdarts_jax.train.config import base_config


def get_config():
    config = base_config()
    config.dataset = "cifar100"
    return config
