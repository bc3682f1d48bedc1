"""Shared CLI plumbing: logging set-up and one-line errors instead of stack traces."""

from __future__ import annotations

import logging
import sys
from typing import Callable

from prdarts_jax.errors import (
    CheckpointError,
    NonFiniteLossError,
    SearchInterrupted,
    TrainingInterrupted,
)
from prdarts_jax.runtime import host_memory

USER_ERRORS = (ValueError, FileNotFoundError, NonFiniteLossError, SearchInterrupted,
               TrainingInterrupted, CheckpointError)


QUIET_LOGGERS = ("absl", "jax._src.xla_bridge", "matplotlib")
"""Libraries whose INFO lines are noise in a run's log (matplotlib: "generated new
fontManager" on a first start; absl: TFDS's chatter)."""


def setup_logging() -> None:
    """INFO lines of prdarts_jax with their time, on stderr; the QUIET_LOGGERS at WARNING."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S",
                        force=True)
    for noisy in QUIET_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)


def run_main(fn: Callable[[], object]) -> None:
    """Runs `fn`; a user-facing error (bad config, missing data, NaN loss) exits with one line."""
    setup_logging()
    host = host_memory.describe()
    if host:
        logging.info(host)
    try:
        fn()
        from prdarts_jax.runtime.distributed import stop_watchdogs
        stop_watchdogs()
    except USER_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except Exception as err:
        lost = lost_peer(err)
        if lost is None:
            raise
        from prdarts_jax.runtime.distributed import stop_for_lost_peer
        stop_for_lost_peer(lost)


_LOST_PEER_MARKS = ("Connection closed by peer", "Connection reset by peer", "heartbeat timeout",
                    "Gloo", "Socket closed", "Broken pipe")


def lost_peer(err: BaseException) -> str | None:
    """The reason to report when `err` is a collective that failed because another process of
    a multi-process job went away; None for any other error."""
    import jax
    if jax.process_count() == 1 or not isinstance(err, jax.errors.JaxRuntimeError):
        return None
    text = str(err)
    if not any(mark in text for mark in _LOST_PEER_MARKS):
        return None
    return (f"process {jax.process_index()} of {jax.process_count()}: a collective failed "
            f"because another process went away ({text.splitlines()[0][:160]})")
