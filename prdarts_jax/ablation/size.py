"""The size of a genotype's network at the retraining's size: parameters and multiply-adds.

`network_size` counts them with the analytic counter `models.cost.network_cost` (batch 1,
inference, auxiliary head excluded; its parameters equal `models.network.param_count`), the
counter the retraining itself uses for results.json's `params` and `madds`. The ablation calls
it only for a results.json written before the retraining recorded `madds`. Plain Python:
nothing is traced or compiled.
"""

from __future__ import annotations

import functools
import json

from prdarts_jax.space.genotypes import Genotype


@functools.lru_cache(maxsize=None)
def _size(genotype_json: str, dataset: str, channels: int, layers: int) -> tuple[int, int]:
    from prdarts_jax.data import dataset_info
    from prdarts_jax.models.cost import network_cost

    info = dataset_info(dataset)
    cost = network_cost(Genotype.from_json(json.loads(genotype_json)), info.num_classes,
                        channels, layers, info.image_shape)
    return cost.params, cost.madds


def network_size(genotype: Genotype, dataset: str, channels: int, layers: int,
                 params: int | None = None) -> tuple[int, int]:
    """(parameters, multiply-adds) of `genotype` as a final network with `channels` and
    `layers` on `dataset` (its classes and image size). `params`, when recorded (a
    retraining's results.json), is returned instead of the counted one (they agree)."""
    counted, madds = _size(json.dumps(genotype.to_json(), sort_keys=True), dataset, channels,
                           layers)
    return (counted if params is None else params), madds
