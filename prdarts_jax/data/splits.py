"""Index splits of a training set as DARTS/PR-DARTS use them."""

from __future__ import annotations

import numpy as np


def split_halves(n: int, portion: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """(weight_idx, alpha_idx): the first int(n * portion) indices train the
    network weights, the rest train the architecture parameters alpha.

    Contiguous, as in DARTS (`indices[:split]`, `indices[split:]`); the stored
    split order is what makes it a fair partition.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}.")
    if not 0.0 <= portion <= 1.0:
        raise ValueError(f"portion must be in [0, 1], got {portion}.")
    cut = int(n * portion)
    indices = np.arange(n, dtype=np.int64)
    return indices[:cut], indices[cut:]
