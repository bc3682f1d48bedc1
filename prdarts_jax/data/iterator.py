"""Resumable epochs of shuffled index batches with a per-call batch size.

The iterator serves a stream made of successive random permutations of
`indices`. Every batch has exactly the requested size (fixed XLA shapes): a
batch that reaches the end of a permutation continues into the next,
freshly drawn one. Epochs are consecutive windows of `samples_per_epoch`
stream samples: the batch that reaches or crosses a window's end completes the
epoch (`epoch_done`), and the samples it takes beyond the end count towards
the next epoch. So every epoch serves exactly `samples_per_epoch` samples, and
with the default `samples_per_epoch == len(indices)` epoch e is exactly
permutation e (each index once).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import numpy as np


def _generator_from_state(bit_state: dict[str, Any]) -> np.random.Generator:
    bit_generator = getattr(np.random, bit_state["bit_generator"])()
    bit_generator.state = bit_state
    return np.random.Generator(bit_generator)


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


class EpochIterator:
    """Shuffled index batches; `state()`/`restore()` resume mid-epoch exactly."""

    def __init__(
        self,
        indices: np.ndarray,
        seed: int | np.random.Generator,
        samples_per_epoch: int | None = None,
    ) -> None:
        indices = np.array(indices)
        if indices.ndim != 1 or indices.size == 0:
            raise ValueError(f"indices must be a non-empty 1-D array, got shape {indices.shape}.")
        indices.flags.writeable = False
        self._indices = indices
        self.samples_per_epoch = int(samples_per_epoch or len(indices))
        if self.samples_per_epoch <= 0:
            raise ValueError(f"samples_per_epoch must be positive, got {samples_per_epoch}.")
        self._rng = (
            copy.deepcopy(seed) if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        )
        self.epoch = 0
        self.step = 0
        self.epoch_done = False
        self._epoch_offset = 0
        self._draw_permutation()

    def _draw_permutation(self) -> None:
        self._permutation_rng_state = copy.deepcopy(self._rng.bit_generator.state)
        self._permutation = self._rng.permutation(self._indices)
        self.position = 0

    @property
    def num_indices(self) -> int:
        return len(self._indices)

    def steps_remaining(self, batch_size: int) -> int:
        """Batches of `batch_size` until the current epoch completes."""
        return -(-(self.samples_per_epoch - self._epoch_offset) // batch_size)

    def next_batch(self, batch_size: int) -> np.ndarray:
        """The next `batch_size` indices of the stream (always exactly that many)."""
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}.")
        parts = []
        needed = batch_size
        while needed:
            if self.position == len(self._permutation):
                self._draw_permutation()
            take = min(needed, len(self._permutation) - self.position)
            parts.append(self._permutation[self.position : self.position + take])
            self.position += take
            needed -= take
        self.step += 1
        self._epoch_offset += batch_size
        completed, self._epoch_offset = divmod(self._epoch_offset, self.samples_per_epoch)
        self.epoch += completed
        self.epoch_done = completed > 0
        return np.concatenate(parts)

    def iter_epoch(self, batch_size: int) -> Iterator[np.ndarray]:
        """Yields batches until the current epoch completes."""
        for _ in range(self.steps_remaining(batch_size)):
            yield self.next_batch(batch_size)

    def state(self) -> dict[str, Any]:
        """JSON-serialisable snapshot; the RNG state is the one before the current permutation."""
        return _json_safe(
            {
                "epoch": self.epoch,
                "step": self.step,
                "position": self.position,
                "epoch_offset": self._epoch_offset,
                "epoch_done": self.epoch_done,
                "samples_per_epoch": self.samples_per_epoch,
                "num_indices": self.num_indices,
                "permutation_rng_state": self._permutation_rng_state,
            }
        )

    def restore(self, state: dict[str, Any]) -> None:
        """Continues exactly where the iterator that produced `state` was."""
        if state["num_indices"] != self.num_indices:
            raise ValueError(
                f"State is for {state['num_indices']} indices, this iterator has {self.num_indices}."
            )
        self._rng = _generator_from_state(state["permutation_rng_state"])
        self._draw_permutation()
        self.position = int(state["position"])
        self.samples_per_epoch = int(state["samples_per_epoch"])
        self.epoch = int(state["epoch"])
        self.step = int(state["step"])
        self._epoch_offset = int(state["epoch_offset"])
        self.epoch_done = bool(state["epoch_done"])

    @classmethod
    def from_state(cls, indices: np.ndarray, state: dict[str, Any]) -> EpochIterator:
        """A new iterator over `indices` resumed from `state`."""
        iterator = cls(indices, seed=0, samples_per_epoch=state["samples_per_epoch"])
        iterator.restore(state)
        return iterator
