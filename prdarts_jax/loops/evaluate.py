"""Inference-mode loss and accuracy over a set of sample indices, in whole padded batches."""

from __future__ import annotations

from typing import Callable

import jax
import numpy as np

from prdarts_jax.runtime import parallel

EvalBatch = Callable[[jax.Array, jax.Array], tuple[jax.Array, jax.Array]]
"""(indices, mask) -> (sum of the masked losses, number of masked correct predictions)."""


def evaluate(eval_batch: EvalBatch, indices: np.ndarray, batch_size: int,
             placement: parallel.Placement) -> tuple[float, float]:
    """Mean loss and accuracy over `indices`. Every batch has the same shape (one compile): the
    last is padded with index 0 and masked out; the batch rounds up to the device count."""
    batch_size = parallel.round_up(batch_size, placement)
    total_loss = total_correct = 0.0
    for start in range(0, len(indices), batch_size):
        chunk = indices[start:start + batch_size]
        idx = np.zeros(batch_size, np.int32)
        idx[:len(chunk)] = chunk
        mask = (np.arange(batch_size) < len(chunk)).astype(np.float32)
        loss, correct = eval_batch(placement.shard_batch(idx), placement.shard_batch(mask))
        total_loss += float(loss)
        total_correct += float(correct)
    return total_loss / len(indices), total_correct / len(indices)
