"""scikit-learn's handwritten digits as a TFDS builder: a real dataset that needs no network.

1,797 8x8 grayscale images (UCI optdigits test set, shipped inside
scikit-learn). Pixel counts 0..16 become uint8 via rint(v * 255 / 16).
Split: `np.random.RandomState(0).permutation(1797)` (legacy RandomState,
whose stream numpy keeps stable); its first 1,437 entries (80 %) form 'train'
and the remaining 360 'test', each stored in permutation order.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import tensorflow_datasets as tfds

IMAGE_SHAPE = (8, 8, 1)
NUM_EXAMPLES = 1797
NUM_TRAIN = 1437
SPLIT_SEED = 0


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """All 1,797 digits as (uint8 [n, 8, 8, 1], int64 labels) in scikit-learn's order.

    scikit-learn is imported here because it takes over a second to import.
    """
    from sklearn.datasets import load_digits

    pixels, labels = load_digits(return_X_y=True)
    images = np.rint(pixels * (255.0 / 16.0)).astype(np.uint8).reshape(-1, *IMAGE_SHAPE)
    return images, labels.astype(np.int64)


def split_permutation() -> dict[str, np.ndarray]:
    """Indices into scikit-learn's order for each split (documented, fixed)."""
    perm = np.random.RandomState(SPLIT_SEED).permutation(NUM_EXAMPLES)
    return {"train": perm[:NUM_TRAIN], "test": perm[NUM_TRAIN:]}


class SklearnDigits(tfds.core.GeneratorBasedBuilder):
    """Handwritten digits 0-9, 8x8x1 uint8, 1437 train / 360 test."""

    name = "sklearn_digits"
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release: seed-0 permutation split 1437/360."}

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__,
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Tensor(shape=IMAGE_SHAPE, dtype=np.uint8, encoding="bytes"),
                    "label": tfds.features.ClassLabel(names=[str(d) for d in range(10)]),
                    "sklearn_index": tfds.features.Scalar(dtype=np.int64),
                }
            ),
            supervised_keys=("image", "label"),
            disable_shuffling=True,
            homepage="https://archive.ics.uci.edu/dataset/80",
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        images, labels = digits_arrays()
        return {
            split: self._generate_examples(images, labels, indices)
            for split, indices in split_permutation().items()
        }

    def _generate_examples(
        self, images: np.ndarray, labels: np.ndarray, indices: np.ndarray
    ) -> Iterator[tuple[int, dict]]:
        for position, index in enumerate(indices):
            yield position, {
                "image": images[index],
                "label": int(labels[index]),
                "sklearn_index": int(index),
            }
