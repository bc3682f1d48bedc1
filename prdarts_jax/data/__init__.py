"""Data: TF-free TFDS datasets (CIFAR-10/100, digits), splits, augmentation, batching.

The dataset names (`load_split`, `dataset_info`, …) load `source`, and with it
tensorflow-datasets, on first use, so that the on-device parts (`augment`, `normalize`) serve
code that runs without it (`search.bilevel` on a bare GPU machine, the benchmarks).
"""

from typing import Any

from prdarts_jax.data.augment import (
    DataSpec,
    apply_cutout,
    augment,
    normalize,
    random_crop,
    random_flip,
)
from prdarts_jax.data.iterator import EpochIterator
from prdarts_jax.data.splits import split_halves
from prdarts_jax.errors import ArchiveChecksumError, DatasetUnavailableError

_FROM_SOURCE = ("DatasetSpec", "dataset_info", "default_data_dir", "known_datasets", "load_split",
                "make_builder", "prepare")


def __getattr__(name: str) -> Any:
    if name in _FROM_SOURCE:
        from prdarts_jax.data import source
        return getattr(source, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "ArchiveChecksumError",
    "DataSpec",
    "DatasetSpec",
    "DatasetUnavailableError",
    "EpochIterator",
    "apply_cutout",
    "augment",
    "dataset_info",
    "default_data_dir",
    "known_datasets",
    "load_split",
    "make_builder",
    "normalize",
    "prepare",
    "random_crop",
    "random_flip",
    "split_halves",
]
