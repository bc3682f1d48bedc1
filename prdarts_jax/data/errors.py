"""Exceptions raised when a dataset cannot be made available locally."""


class DatasetUnavailableError(ValueError):
    """The dataset is neither prepared nor obtainable (no archive, no network)."""


class ArchiveChecksumError(DatasetUnavailableError):
    """A local archive exists but is not the expected file (size or sha256)."""
