"""Shared CLI plumbing: logging set-up and one-line errors instead of stack traces."""

from __future__ import annotations

import logging
import sys
from typing import Callable

USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError, RuntimeError)


def run_main(fn: Callable[[], object]) -> None:
    """Runs `fn`; a user-facing error (bad config, missing data, NaN loss) exits with one line."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S",
                        force=True)
    logging.getLogger("absl").setLevel(logging.WARNING)
    try:
        fn()
    except USER_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
