"""Errors that a user can act on; the CLIs print them as one line instead of a stack trace."""


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite."""


class SearchInterrupted(RuntimeError):
    """SIGTERM/SIGINT stopped the run after saving a checkpoint."""


class CheckpointError(RuntimeError):
    """No checkpoint in the workdir could be read."""


class TrainingInterrupted(RuntimeError):
    """SIGTERM/SIGINT stopped a retraining after saving a checkpoint."""
