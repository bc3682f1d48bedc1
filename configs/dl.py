"""PR-DARTS search in the DARTS-like space (DL), CIFAR-10, as in the paper.

    python -m prdarts_jax.search --config configs/dl.py --workdir runs/dl

C=16, 8 cells, the 9-cycle schedule of Table 1 (100 epochs). Expected cost: the paper
reports 0.82 GPU-days on one GTX 1080 Ti for this search with the variable batch size
24..128 (`config.batch`), which these configs use too.
"""

from prdarts_jax.search.config import base_config


def get_config():
    config = base_config()
    config.space = "DL"
    return config
