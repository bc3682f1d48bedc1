"""Finding, verifying and describing downloadable dataset archives.

The tfds downloader retries for minutes when the network is down, so
builders resolve their archive here first: a verified local copy if one
exists, otherwise a quick reachability probe that fails in seconds.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import socket
import threading
import urllib.parse
from collections.abc import Iterable, Sequence

from tensorflow_datasets.core.download import resource as tfds_resource

from prdarts_jax.errors import ArchiveChecksumError, DatasetUnavailableError

PROBE_TIMEOUT_S = 2.0


@dataclasses.dataclass(frozen=True)
class ArchiveSpec:
    """A remote archive and the size/sha256 a local copy must have."""

    url: str
    size: int
    sha256: str

    @property
    def filename(self) -> str:
        return os.path.basename(urllib.parse.urlparse(self.url).path)

    @property
    def host(self) -> str:
        return urllib.parse.urlparse(self.url).hostname or ""

    @property
    def port(self) -> int:
        parsed = urllib.parse.urlparse(self.url)
        return parsed.port or (80 if parsed.scheme == "http" else 443)


def sha256_of(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def verify_archive(path: str | os.PathLike, spec: ArchiveSpec) -> None:
    """Raises ArchiveChecksumError unless `path` has the spec's size and sha256."""
    size = os.path.getsize(path)
    problem = None
    if size != spec.size:
        problem = f"its size is {size} bytes, expected {spec.size}"
    elif (digest := sha256_of(path)) != spec.sha256:
        problem = f"its sha256 is {digest}, expected {spec.sha256}"
    if problem:
        raise ArchiveChecksumError(
            f"Archive {os.fspath(path)} is not the expected {spec.filename}: "
            f"{problem}. It is truncated or a different file; delete it and "
            f"download {spec.url} again to that location."
        )


def candidate_paths(
    spec: ArchiveSpec,
    manual_dir: str | os.PathLike,
    download_dir: str | os.PathLike,
    dataset_names: Iterable[str] = (),
) -> list[str]:
    """Where a local copy may be: the manual dir, the downloads dir, tfds' cache."""
    cached = tfds_resource.get_dl_fname(spec.url, spec.sha256)
    paths = [
        os.path.join(manual_dir, spec.filename),
        os.path.join(download_dir, spec.filename),
        os.path.join(download_dir, cached),
    ]
    paths += [os.path.join(download_dir, name, cached) for name in dataset_names]
    return paths


def find_local_archive(paths: Sequence[str], spec: ArchiveSpec) -> str | None:
    """First existing path, verified against the spec; None if none exists."""
    for path in paths:
        if os.path.isfile(path):
            verify_archive(path, spec)
            return path
    return None


def host_reachable(host: str, port: int = 443, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether a TCP connection to host:port opens within `timeout` seconds.

    Runs in a daemon thread so that a hanging DNS lookup cannot exceed the bound.
    """
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    return bool(result and result[0])


def unavailable_message(
    title: str, spec: ArchiveSpec, data_dir: str | os.PathLike, manual_dir: str | os.PathLike
) -> str:
    """The one message shown when neither data nor archive nor network exist."""
    target = os.path.join(manual_dir, spec.filename)
    return (
        f"{title} is not prepared in data_dir {os.fspath(data_dir)!r}, no local "
        f"archive was found and {spec.host} is unreachable. Download "
        f"{spec.url} ({spec.size} bytes, sha256 {spec.sha256}) on a machine with "
        f"network access and put it at {target} (or set --config.data_dir / "
        f"TFDS_DATA_DIR to a data_dir where the dataset is already prepared)."
    )


def resolve_archive(
    title: str,
    spec: ArchiveSpec,
    *,
    data_dir: str | os.PathLike,
    manual_dir: str | os.PathLike,
    download_dir: str | os.PathLike,
    dataset_names: Iterable[str] = (),
) -> str | None:
    """Returns a verified local archive, None if it must be downloaded.

    Raises DatasetUnavailableError within seconds when no local copy exists and
    the archive host is unreachable.
    """
    paths = candidate_paths(spec, manual_dir, download_dir, dataset_names)
    if (found := find_local_archive(paths, spec)) is not None:
        return found
    if not host_reachable(spec.host, spec.port):
        raise DatasetUnavailableError(unavailable_message(title, spec, data_dir, manual_dir))
    return None
