"""optim.py: the cycle's cosine learning rate, both ways it can end."""

from __future__ import annotations

import math

import pytest

from prdarts_jax.optim import cosine_lr

DL_EPOCHS = (15, 15, 10, 10, 10, 10, 10, 10, 10)
"""The paper's Table 1 cycle lengths."""


@pytest.mark.parametrize("epochs", sorted(set(DL_EPOCHS)))
def test_reach_min_starts_at_lr_max_and_ends_exactly_at_lr_min(epochs):
    lrs = [cosine_lr(e, epochs, 0.025, 0.01, reach_min=True) for e in range(epochs)]
    assert lrs[0] == 0.025 and lrs[-1] == 0.01
    assert all(a > b for a, b in zip(lrs, lrs[1:]))


@pytest.mark.parametrize("epochs, last", [(15, 0.010163892994496458), (10, 0.010367076127786349)])
def test_pytorch_schedule_ends_one_step_above_lr_min(epochs, last):
    """DARTS' CosineAnnealingLR stepped per epoch with T_max = epochs."""
    assert cosine_lr(0, epochs, 0.025, 0.01) == 0.025
    assert cosine_lr(epochs - 1, epochs, 0.025, 0.01) == last
    assert last == 0.01 + 0.015 * (1 + math.cos(math.pi * (epochs - 1) / epochs)) / 2


def test_a_one_epoch_cycle_runs_at_lr_max():
    assert cosine_lr(0, 1, 0.025, 0.01, reach_min=True) == 0.025
    assert cosine_lr(0, 1, 0.025, 0.01) == 0.025
