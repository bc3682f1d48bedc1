"""CIFAR-10/100 TFDS builders that prepare and read without TensorFlow.

They mirror the stock `cifar10`/`cifar100` builders (same archive, checksum,
splits and label semantics) but read the archive with `tarfile`, store images
as raw uint8 tensors and keep archive order (`disable_shuffling`), so index i
of 'train' is the i-th image of data_batch_1..5 (CIFAR-10) or train.bin
(CIFAR-100), the order torchvision and DARTS use.
"""

from __future__ import annotations

import dataclasses
import tarfile
from collections.abc import Iterator, Mapping

import numpy as np
import tensorflow_datasets as tfds
from tensorflow_datasets.core.download import checksums as tfds_checksums
from tensorflow_datasets.core.download.download_manager import NonMatchingChecksumError

from prdarts_jax.data.archive import ArchiveSpec, resolve_archive
from prdarts_jax.errors import ArchiveChecksumError

IMAGE_SHAPE = (32, 32, 3)
_IMAGE_BYTES = 32 * 32 * 3

_CITATION = """\
@TECHREPORT{Krizhevsky09learningmultiple,
    author = {Alex Krizhevsky},
    title = {Learning multiple layers of features from tiny images},
    institution = {},
    year = {2009}
}
"""


@dataclasses.dataclass(frozen=True)
class CifarFormat:
    """Layout of a CIFAR binary archive.

    `label_keys` are in record order (one byte each, before the 3072 CHW image
    bytes); `split_sizes` is checked after parsing, None skips the check.
    """

    title: str
    archive: ArchiveSpec
    prefix: str
    split_files: Mapping[str, tuple[str, ...]]
    label_keys: tuple[str, ...]
    label_files: tuple[str, ...]
    split_sizes: Mapping[str, int] | None


CIFAR10_FORMAT = CifarFormat(
    title="CIFAR-10",
    archive=ArchiveSpec(
        url="https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
        size=170052171,
        sha256="c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd",
    ),
    prefix="cifar-10-batches-bin/",
    split_files={
        "train": tuple(f"data_batch_{i}.bin" for i in range(1, 6)),
        "test": ("test_batch.bin",),
    },
    label_keys=("label",),
    label_files=("batches.meta.txt",),
    split_sizes={"train": 50000, "test": 10000},
)

CIFAR100_FORMAT = CifarFormat(
    title="CIFAR-100",
    archive=ArchiveSpec(
        url="https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz",
        size=168513733,
        sha256="58a81ae192c23a4be8b1804d68e518ed807d710a4eb253b1f2a199162a40d8ec",
    ),
    prefix="cifar-100-binary/",
    split_files={"train": ("train.bin",), "test": ("test.bin",)},
    label_keys=("coarse_label", "label"),
    label_files=("coarse_label_names.txt", "fine_label_names.txt"),
    split_sizes={"train": 50000, "test": 10000},
)


def read_members(archive_path: str, names: set[str]) -> dict[str, bytes]:
    """Reads the named regular files from a tar(.gz) in one sequential pass."""
    found: dict[str, bytes] = {}
    with tarfile.open(archive_path, "r:*") as tar:
        for member in tar:
            name = member.name.removeprefix("./")
            if member.isfile() and name in names:
                found[name] = tar.extractfile(member).read()
    if missing := sorted(names - found.keys()):
        raise ValueError(f"Archive {archive_path} lacks members {missing}.")
    return found


def parse_records(data: bytes, num_labels: int) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR binary records -> (labels [n, num_labels] uint8, images [n,32,32,3] uint8)."""
    record = num_labels + _IMAGE_BYTES
    if len(data) % record:
        raise ValueError(f"{len(data)} bytes is not a whole number of {record}-byte records.")
    rows = np.frombuffer(data, dtype=np.uint8).reshape(-1, record)
    images = rows[:, num_labels:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return rows[:, :num_labels], images


def download_verified(dl_manager: tfds.download.DownloadManager, spec: ArchiveSpec) -> str:
    """Downloads with tfds (which checks size/sha256 against `url_infos`)."""
    try:
        return str(dl_manager.download(spec.url))
    except NonMatchingChecksumError as error:
        raise ArchiveChecksumError(
            f"Downloaded {spec.url} does not have the expected size {spec.size} and "
            f"sha256 {spec.sha256}; the server sent a different file. Details: {error}"
        ) from error


def manual_dir_of(dl_manager: tfds.download.DownloadManager) -> str:
    """The manual dir without tfds' `manual_dir` property, which asserts it is non-empty."""
    manual = getattr(dl_manager, "_manual_dir", None)
    return str(manual or dl_manager.download_dir / "manual")


def _label_names(text: bytes) -> list[str]:
    return [name.strip() for name in text.decode("utf-8").split("\n") if name.strip()]


class _CifarNoTf(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Shared CIFAR logic; subclasses set FORMAT, name, VERSION and _label_features."""

    FORMAT: CifarFormat
    STOCK_NAME: str
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "TF-free mirror of the stock builder, archive order."}

    @tfds.core.utils.classproperty
    @classmethod
    def url_infos(cls) -> dict[str, tfds_checksums.UrlInfo]:
        spec = cls.FORMAT.archive
        return {spec.url: tfds_checksums.UrlInfo(spec.size, spec.sha256, spec.filename)}

    def _label_features(self) -> dict[str, tfds.features.ClassLabel]:
        raise NotImplementedError

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=f"{self.FORMAT.title} from the binary archive, prepared without TensorFlow.",
            features=tfds.features.FeaturesDict(
                {
                    "id": tfds.features.Text(),
                    "image": tfds.features.Tensor(shape=IMAGE_SHAPE, dtype=np.uint8, encoding="bytes"),
                    **self._label_features(),
                }
            ),
            supervised_keys=("image", "label"),
            disable_shuffling=True,
            homepage="https://www.cs.toronto.edu/~kriz/cifar.html",
            citation=_CITATION,
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        fmt = self.FORMAT
        path = resolve_archive(
            fmt.title,
            fmt.archive,
            data_dir=self.data_dir_root,
            manual_dir=manual_dir_of(dl_manager),
            download_dir=dl_manager.download_dir,
            dataset_names=(self.name, self.STOCK_NAME),
        )
        if path is None:
            path = download_verified(dl_manager, fmt.archive)
        wanted = {fmt.prefix + f for files in fmt.split_files.values() for f in files}
        wanted |= {fmt.prefix + f for f in fmt.label_files}
        members = read_members(str(path), wanted)
        for key, label_file in zip(fmt.label_keys, fmt.label_files):
            self.info.features[key].names = _label_names(members[fmt.prefix + label_file])
        return {
            split: self._generate_examples(split, [members[fmt.prefix + f] for f in files])
            for split, files in fmt.split_files.items()
        }

    def _generate_examples(self, split: str, blobs: list[bytes]) -> Iterator[tuple[int, dict]]:
        parsed = [parse_records(blob, len(self.FORMAT.label_keys)) for blob in blobs]
        labels = np.concatenate([p[0] for p in parsed])
        images = np.concatenate([p[1] for p in parsed])
        expected = (self.FORMAT.split_sizes or {}).get(split)
        if expected is not None and len(images) != expected:
            raise ValueError(
                f"{self.FORMAT.title} {split!r} has {len(images)} examples, expected {expected}."
            )
        for index, (label_row, image) in enumerate(zip(labels, images)):
            example = {key: int(v) for key, v in zip(self.FORMAT.label_keys, label_row)}
            example["id"] = f"{split}_{index:05d}"
            example["image"] = image
            yield index, example


class Cifar10NoTf(_CifarNoTf):
    """CIFAR-10: 50000 train / 10000 test 32x32 RGB images, 10 classes."""

    name = "cifar10_notf"
    STOCK_NAME = "cifar10"
    FORMAT = CIFAR10_FORMAT

    def _label_features(self) -> dict[str, tfds.features.ClassLabel]:
        return {"label": tfds.features.ClassLabel(num_classes=10)}


class Cifar100NoTf(_CifarNoTf):
    """CIFAR-100: 'label' is the fine label (100 classes), 'coarse_label' the 20 superclasses."""

    name = "cifar100_notf"
    STOCK_NAME = "cifar100"
    FORMAT = CIFAR100_FORMAT

    def _label_features(self) -> dict[str, tfds.features.ClassLabel]:
        return {
            "label": tfds.features.ClassLabel(num_classes=100),
            "coarse_label": tfds.features.ClassLabel(num_classes=20),
        }
