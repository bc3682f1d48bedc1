"""Errors that a user can act on; the CLIs print them as one line instead of a stack trace."""


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite."""
