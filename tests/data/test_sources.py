"""Dataset preparation and loading through TFDS without TensorFlow, all offline."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import socket
import sys
import tarfile
import time

import numpy as np
import pytest
import tensorflow_datasets as tfds
from tensorflow_datasets.testing import mocking as tfds_mocking

from prdarts_jax.data import (
    ArchiveChecksumError,
    DatasetUnavailableError,
    dataset_info,
    load_split,
    make_builder,
)
from prdarts_jax.data import archive as archive_lib
from prdarts_jax.data import digits as digits_lib
from prdarts_jax.data.cifar import Cifar10NoTf, Cifar100NoTf
from tests.helpers import fixed_mock_getitems

CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


@pytest.fixture
def offline(monkeypatch):
    """Every reachability probe answers 'unreachable'."""
    monkeypatch.setattr(archive_lib, "host_reachable", lambda *a, **k: False)


def _records(rng: np.random.Generator, n: int, label_highs: tuple[int, ...]):
    labels = np.stack([rng.integers(0, high, n) for high in label_highs], axis=1).astype(np.uint8)
    images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    blob = np.concatenate([labels, images.transpose(0, 3, 1, 2).reshape(n, -1)], axis=1).tobytes()
    return blob, labels, images


def _tar_gz(members: dict[str, bytes], path) -> tuple[int, str]:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    data = open(path, "rb").read()
    return len(data), hashlib.sha256(data).hexdigest()


def fake_cifar10(tmp_path, monkeypatch, rng):
    """A small archive in the real CIFAR-10 binary layout; the builder is pointed at its checksum."""
    prefix = "cifar-10-batches-bin/"
    members, expected = {}, {"train": [], "test": []}
    files = [(f"data_batch_{i}.bin", "train", 3) for i in range(1, 6)] + [("test_batch.bin", "test", 4)]
    for fname, split, n in files:
        blob, labels, images = _records(rng, n, (10,))
        members[prefix + fname] = blob
        expected[split].append((labels[:, 0], images))
    members[prefix + "batches.meta.txt"] = ("\n".join(CIFAR10_NAMES) + "\n\n").encode()
    members[prefix + "readme.html"] = b"<html></html>"
    path = tmp_path / "cifar-10-binary.tar.gz"
    size, sha = _tar_gz(members, path)
    fmt = Cifar10NoTf.FORMAT
    spec = dataclasses.replace(fmt.archive, size=size, sha256=sha)
    monkeypatch.setattr(
        Cifar10NoTf, "FORMAT", dataclasses.replace(fmt, archive=spec, split_sizes={"train": 15, "test": 4})
    )
    joined = {s: (np.concatenate([l for l, _ in v]), np.concatenate([i for _, i in v])) for s, v in expected.items()}
    return path, joined


def fake_cifar100(tmp_path, monkeypatch, rng):
    prefix = "cifar-100-binary/"
    members, expected = {}, {}
    for fname, split, n in [("train.bin", "train", 7), ("test.bin", "test", 5)]:
        blob, labels, images = _records(rng, n, (20, 100))
        members[prefix + fname] = blob
        expected[split] = (labels, images)
    members[prefix + "coarse_label_names.txt"] = "\n".join(f"coarse{i}" for i in range(20)).encode()
    members[prefix + "fine_label_names.txt"] = "\n".join(f"fine{i}" for i in range(100)).encode()
    path = tmp_path / "cifar-100-binary.tar.gz"
    size, sha = _tar_gz(members, path)
    fmt = Cifar100NoTf.FORMAT
    spec = dataclasses.replace(fmt.archive, size=size, sha256=sha)
    monkeypatch.setattr(
        Cifar100NoTf, "FORMAT", dataclasses.replace(fmt, archive=spec, split_sizes={"train": 7, "test": 5})
    )
    return path, expected


def _place(archive, data_dir, sub="downloads/manual"):
    target = data_dir / sub / archive.name
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(archive, target)
    return target


# --- digits: the offline real dataset ---------------------------------------------------------


def test_digits_builds_loads_and_reuses_prepared_files(tmp_path, monkeypatch):
    data_dir = str(tmp_path / "tfds")
    train_x, train_y = load_split("digits", "train", data_dir)
    test_x, test_y = load_split("digits", "test", data_dir)

    assert train_x.shape == (1437, 8, 8, 1) and test_x.shape == (360, 8, 8, 1)
    assert train_x.dtype == np.uint8 and train_y.dtype == np.int32
    assert train_x.max() == 255 and train_x.min() == 0
    assert set(np.unique(train_y)) == set(range(10)) == set(np.unique(test_y))
    assert os.path.isfile(os.path.join(data_dir, "sklearn_digits", "1.0.0", "dataset_info.json"))
    assert "tensorflow" not in sys.modules

    images, labels = digits_lib.digits_arrays()
    perm = digits_lib.split_permutation()
    np.testing.assert_array_equal(train_x, images[perm["train"]])
    np.testing.assert_array_equal(test_y, labels[perm["test"]])
    assert set(perm["train"]).isdisjoint(perm["test"])

    def no_rebuild(*args, **kwargs):
        raise AssertionError("prepared data should be reused")

    monkeypatch.setattr(digits_lib, "digits_arrays", no_rebuild)
    monkeypatch.setattr(digits_lib.SklearnDigits, "_split_generators", no_rebuild)
    again_x, again_y = load_split("digits", "train", data_dir)
    np.testing.assert_array_equal(again_x, train_x)
    np.testing.assert_array_equal(again_y, train_y)


def test_digits_hardcoded_stats_match_training_split():
    images, _ = digits_lib.digits_arrays()
    train = images[digits_lib.split_permutation()["train"]].astype(np.float64) / 255.0
    spec = dataset_info("digits")
    np.testing.assert_allclose(spec.mean, [train.mean()], atol=5e-5)
    np.testing.assert_allclose(spec.std, [train.std()], atol=5e-5)


def test_digits_split_is_fixed():
    perm = digits_lib.split_permutation()
    assert len(perm["train"]) == 1437 and len(perm["test"]) == 360
    assert perm["train"][:5].tolist() == np.random.RandomState(0).permutation(1797)[:5].tolist()


# --- dataset_info ------------------------------------------------------------------------------


def test_dataset_info_values():
    c10, c100, dig = dataset_info("cifar10"), dataset_info("cifar100"), dataset_info("digits")
    assert (c10.num_classes, c10.image_shape, c10.pad) == (10, (32, 32, 3), 4)
    assert c10.mean == (0.4914, 0.4822, 0.4465) and c10.std == (0.2470, 0.2435, 0.2616)
    assert (c100.num_classes, c100.pad) == (100, 4)
    assert c100.mean == (0.5071, 0.4865, 0.4409) and c100.std == (0.2673, 0.2564, 0.2762)
    assert (dig.num_classes, dig.image_shape, dig.pad) == (10, (8, 8, 1), 1)


def test_unknown_dataset_and_split_list_known_ones(tmp_path):
    with pytest.raises(ValueError, match="cifar10, cifar100, digits"):
        dataset_info("imagenet")
    with pytest.raises(ValueError, match="cifar10, cifar100, digits"):
        load_split("mnist", "train", str(tmp_path))
    with pytest.raises(ValueError, match="train, test"):
        load_split("digits", "validation", str(tmp_path))


def test_default_data_dir_honours_env(monkeypatch, tmp_path):
    from prdarts_jax.data import default_data_dir

    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
    assert default_data_dir() == str(tmp_path)
    monkeypatch.delenv("TFDS_DATA_DIR")
    assert default_data_dir() == os.path.expanduser("~/tensorflow_datasets")


# --- CIFAR end to end from archives in the real binary format ---------------------------------


def test_cifar10_prepares_from_manual_archive_exact_pixels(tmp_path, monkeypatch, offline):
    archive, expected = fake_cifar10(tmp_path, monkeypatch, np.random.default_rng(1))
    data_dir = tmp_path / "tfds"
    _place(archive, data_dir)

    for split in ("train", "test"):
        images, labels = load_split("cifar10", split, str(data_dir))
        np.testing.assert_array_equal(labels, expected[split][0])
        np.testing.assert_array_equal(images, expected[split][1])
        assert images.dtype == np.uint8 and labels.dtype == np.int32

    builder = make_builder("cifar10", str(data_dir))
    assert builder.info.features["label"].names == CIFAR10_NAMES
    assert builder.info.splits["train"].num_examples == 15
    assert builder.as_data_source(split="test")[2]["id"] == b"test_00002"
    assert "tensorflow" not in sys.modules


@pytest.mark.parametrize("location", ["downloads/manual", "downloads"])
def test_cifar100_fine_and_coarse_labels(tmp_path, monkeypatch, offline, location):
    archive, expected = fake_cifar100(tmp_path, monkeypatch, np.random.default_rng(2))
    data_dir = tmp_path / "tfds"
    _place(archive, data_dir, location)

    images, fine = load_split("cifar100", "train", str(data_dir))
    _, coarse = load_split("cifar100", "train", str(data_dir), label_key="coarse_label")
    np.testing.assert_array_equal(images, expected["train"][1])
    np.testing.assert_array_equal(coarse, expected["train"][0][:, 0])
    np.testing.assert_array_equal(fine, expected["train"][0][:, 1])
    test_images, _ = load_split("cifar100", "test", str(data_dir))
    np.testing.assert_array_equal(test_images, expected["test"][1])


def test_cifar_split_size_is_checked(tmp_path, monkeypatch, offline):
    archive, _ = fake_cifar10(tmp_path, monkeypatch, np.random.default_rng(3))
    monkeypatch.setattr(Cifar10NoTf, "FORMAT", dataclasses.replace(Cifar10NoTf.FORMAT, split_sizes={"train": 50000}))
    data_dir = tmp_path / "tfds"
    _place(archive, data_dir)
    with pytest.raises(ValueError, match="15 examples, expected 50000"):
        load_split("cifar10", "train", str(data_dir))




def test_load_split_under_tfds_mock_data(tmp_path, monkeypatch):
    """tfds.testing.mock_data stands in for the prepared files (nothing is written).

    tfds 4.9.10's mocked data source supports `source[i]`, but its
    `__getitems__` raises TypeError: mock_data assigns a functools.partial to
    `__getitems__` on a MagicMock, which (unlike `__getitem__`) is not a magic
    method MagicMock binds, so the instance is never passed. load_split uses
    `__getitems__` for speed, hence the one-line patch of the mock helper.
    """
    monkeypatch.setattr(tfds_mocking, "_getitems", fixed_mock_getitems)
    data_dir = tmp_path / "tfds"
    with tfds.testing.mock_data(num_examples=6):
        images, labels = load_split("cifar100", "train", str(data_dir))
    assert images.shape == (6, 32, 32, 3) and images.dtype == np.uint8
    assert labels.dtype == np.int32 and ((0 <= labels) & (labels < 100)).all()
    assert not data_dir.exists()


# --- missing data / offline / bad archive -----------------------------------------------------


def test_offline_without_archive_fails_fast_with_one_clear_message(tmp_path, offline):
    data_dir = tmp_path / "empty"
    start = time.monotonic()
    with pytest.raises(DatasetUnavailableError) as info:
        load_split("cifar10", "train", str(data_dir))
    assert time.monotonic() - start < 10
    message = str(info.value)
    assert str(data_dir) in message
    assert "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz" in message
    assert os.path.join(str(data_dir), "downloads", "manual", "cifar-10-binary.tar.gz") in message
    assert "--config.data_dir" in message
    assert isinstance(info.value, ValueError)


def test_wrong_size_archive_is_rejected(tmp_path, offline):
    data_dir = tmp_path / "tfds"
    bad = data_dir / "downloads" / "manual" / "cifar-100-binary.tar.gz"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not an archive")
    with pytest.raises(ArchiveChecksumError, match="size is 14 bytes, expected 168513733"):
        load_split("cifar100", "test", str(data_dir))


def test_wrong_sha256_archive_is_rejected(tmp_path, monkeypatch, offline):
    archive, _ = fake_cifar10(tmp_path, monkeypatch, np.random.default_rng(4))
    fmt = Cifar10NoTf.FORMAT
    monkeypatch.setattr(
        Cifar10NoTf, "FORMAT", dataclasses.replace(fmt, archive=dataclasses.replace(fmt.archive, sha256="0" * 64))
    )
    data_dir = tmp_path / "tfds"
    placed = _place(archive, data_dir)
    with pytest.raises(ArchiveChecksumError) as info:
        load_split("cifar10", "train", str(data_dir))
    assert str(placed) in str(info.value) and "sha256" in str(info.value)


def test_reachability_probe_is_time_bounded(monkeypatch):
    def hang(*args, **kwargs):
        time.sleep(5)
        raise OSError("late")

    monkeypatch.setattr(socket, "create_connection", hang)
    start = time.monotonic()
    assert archive_lib.host_reachable("example.invalid", timeout=0.2) is False
    assert time.monotonic() - start < 2


# --- download branch, served from localhost (no internet involved) ---------------------------


@pytest.fixture
def local_http(tmp_path):
    """Serves tmp_path/'served' over http://127.0.0.1:<port>/ for the test's duration."""
    import functools
    import http.server
    import threading

    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_downloads_through_tfds_when_host_reachable(tmp_path, monkeypatch, local_http):
    root, base = local_http
    archive, expected = fake_cifar10(tmp_path, monkeypatch, np.random.default_rng(5))
    os.replace(archive, root / archive.name)
    fmt = Cifar10NoTf.FORMAT
    url = f"{base}/{archive.name}"
    monkeypatch.setattr(
        Cifar10NoTf, "FORMAT", dataclasses.replace(fmt, archive=dataclasses.replace(fmt.archive, url=url))
    )
    data_dir = tmp_path / "tfds"
    images, labels = load_split("cifar10", "test", str(data_dir))
    np.testing.assert_array_equal(images, expected["test"][1])
    np.testing.assert_array_equal(labels, expected["test"][0])
    assert any(p.name.endswith(".tar.gz") for p in (data_dir / "downloads").rglob("*"))


def test_download_with_wrong_checksum_is_rejected(tmp_path, monkeypatch, local_http):
    root, base = local_http
    archive, _ = fake_cifar10(tmp_path, monkeypatch, np.random.default_rng(6))
    os.replace(archive, root / archive.name)
    fmt = Cifar10NoTf.FORMAT
    spec = dataclasses.replace(fmt.archive, url=f"{base}/{archive.name}", sha256="0" * 64)
    monkeypatch.setattr(Cifar10NoTf, "FORMAT", dataclasses.replace(fmt, archive=spec))
    with pytest.raises(ArchiveChecksumError, match="expected size"):
        load_split("cifar10", "test", str(tmp_path / "tfds"))
