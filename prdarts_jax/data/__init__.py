"""Data: TF-free TFDS datasets (CIFAR-10/100, digits), splits, augmentation, batching."""

from prdarts_jax.data.augment import apply_cutout, augment, normalize, random_crop, random_flip
from prdarts_jax.data.errors import ArchiveChecksumError, DatasetUnavailableError
from prdarts_jax.data.iterator import EpochIterator
from prdarts_jax.data.source import (
    DatasetSpec,
    dataset_info,
    default_data_dir,
    known_datasets,
    load_split,
    make_builder,
    prepare,
)
from prdarts_jax.data.splits import split_halves

__all__ = [
    "ArchiveChecksumError",
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
