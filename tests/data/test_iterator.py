"""Index splits and the resumable epoch iterator."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prdarts_jax.data import EpochIterator, split_halves


@given(st.integers(0, 5000), st.floats(0.0, 1.0))
@settings(max_examples=50, deadline=None)
def test_split_halves_disjoint_and_covering(n, portion):
    weights, alphas = split_halves(n, portion)
    assert len(weights) == int(n * portion)
    np.testing.assert_array_equal(np.concatenate([weights, alphas]), np.arange(n))


def test_split_halves_default_is_darts_half():
    weights, alphas = split_halves(50000)
    assert weights[0] == 0 and weights[-1] == 24999 and alphas[0] == 25000 and len(alphas) == 25000
    with pytest.raises(ValueError):
        split_halves(10, 1.5)


def test_every_batch_has_requested_size_and_epochs_are_permutations():
    indices = np.arange(100, 110)
    it = EpochIterator(indices, seed=0)
    served = [it.next_batch(4) for _ in range(15)]
    assert all(len(b) == 4 for b in served)
    stream = np.concatenate(served)
    for e in range(6):
        assert sorted(stream[10 * e : 10 * (e + 1)]) == list(range(100, 110))
    assert it.epoch == 6 and it.step == 15


def test_epoch_accounting_with_spill_and_steps_remaining():
    it = EpochIterator(np.arange(10), seed=1)
    assert it.steps_remaining(4) == 3
    batches = list(it.iter_epoch(4))
    assert len(batches) == 3 and it.epoch == 1 and it.epoch_done
    assert it.steps_remaining(4) == 2
    it.next_batch(4)
    assert not it.epoch_done and it.steps_remaining(4) == 1
    it.next_batch(4)
    assert it.epoch_done and it.epoch == 2 and it.steps_remaining(4) == 3


def test_samples_per_epoch_fixed_with_changing_batch_sizes():
    it = EpochIterator(np.arange(37), seed=2, samples_per_epoch=50)
    sizes = iter([3, 8, 5, 13, 1, 7] * 40)
    total = 0
    while it.epoch < 5:
        b = next(sizes)
        assert len(it.next_batch(b)) == b
        total += b
        spill = total - 50 * it.epoch
        assert 0 <= spill < 50
        if it.epoch_done:
            assert spill < b
    assert it.epoch * 50 + it.state()["epoch_offset"] == total


@pytest.mark.parametrize("stop", [0, 3, 7, 10, 11, 23])
def test_resume_mid_epoch_gives_identical_remaining_batches(stop):
    indices = np.arange(1000, 1023)
    sizes = [5, 5, 7, 3, 11, 2, 9, 4, 6, 8, 1, 13] * 3
    reference = EpochIterator(indices, seed=np.random.default_rng(42))
    expected = [reference.next_batch(b) for b in sizes]

    first = EpochIterator(indices, seed=np.random.default_rng(42))
    for b in sizes[:stop]:
        first.next_batch(b)
    state = json.loads(json.dumps(first.state()))
    resumed = EpochIterator.from_state(indices, state)
    assert (resumed.epoch, resumed.step, resumed.position) == (first.epoch, first.step, first.position)
    for b, want in zip(sizes[stop:], expected[stop:]):
        np.testing.assert_array_equal(resumed.next_batch(b), want)
        np.testing.assert_array_equal(first.next_batch(b), want)
    assert resumed.state() == first.state() == reference.state()


def test_restore_into_existing_iterator_and_generator_is_not_shared():
    rng = np.random.default_rng(7)
    a = EpochIterator(np.arange(12), seed=rng)
    rng.random(100)
    b = EpochIterator(np.arange(12), seed=np.random.default_rng(7))
    np.testing.assert_array_equal(a.next_batch(12), b.next_batch(12))
    a.next_batch(5)
    other = EpochIterator(np.arange(12), seed=99)
    other.restore(a.state())
    np.testing.assert_array_equal(other.next_batch(9), a.next_batch(9))
    with pytest.raises(ValueError, match="12 indices"):
        EpochIterator(np.arange(5), seed=0).restore(a.state())


def test_same_seed_same_stream_different_seed_different_stream():
    a, b, c = (EpochIterator(np.arange(50), seed=s) for s in (3, 3, 4))
    np.testing.assert_array_equal(a.next_batch(20), b.next_batch(20))
    assert not np.array_equal(b.next_batch(20), c.next_batch(20))
