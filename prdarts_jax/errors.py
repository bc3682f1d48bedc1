"""Errors that a user can act on; the CLIs print them as one line instead of a stack trace.

The bottom of the house: every layer may raise these, and `runtime.cli.run_main` catches them.
"""


class ConfigError(ValueError):
    """A bad configuration value, found before any work starts."""


class DatasetUnavailableError(ValueError):
    """The dataset is neither prepared nor obtainable (no archive, no network)."""


class ArchiveChecksumError(DatasetUnavailableError):
    """A local archive exists but is not the expected file (size or sha256)."""


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite."""


class SearchInterrupted(RuntimeError):
    """SIGTERM/SIGINT stopped the run after saving a checkpoint."""


class CheckpointError(RuntimeError):
    """No checkpoint in the workdir could be read."""


class TrainingInterrupted(RuntimeError):
    """SIGTERM/SIGINT stopped a retraining after saving a checkpoint."""
