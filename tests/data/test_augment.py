"""On-device augmentation: determinism, flips, crops with zero padding, normalisation, cutout."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prdarts_jax.data import apply_cutout, augment, normalize

MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)


def _batch(n=8, h=32, w=32, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def _reference_normalize(x):
    return (x.astype(np.float32) / 255.0 - np.float32(MEAN)) / np.float32(STD)


def test_shapes_dtypes_and_determinism():
    x = _batch()
    key = jax.random.key(0)
    out = augment(key, x, mean=MEAN, std=STD, pad=4, cutout=16)
    assert out.shape == x.shape and out.dtype == jnp.float32
    np.testing.assert_array_equal(out, augment(key, x, mean=MEAN, std=STD, pad=4, cutout=16))
    other = augment(jax.random.key(1), x, mean=MEAN, std=STD, pad=4, cutout=16)
    assert not np.array_equal(out, other)


def test_identity_path_is_plain_normalisation():
    x = _batch()
    out = augment(jax.random.key(3), x, mean=MEAN, std=STD, pad=0, flip=False, cutout=0)
    np.testing.assert_allclose(out, _reference_normalize(x), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(normalize(x, MEAN, STD), _reference_normalize(x), rtol=1e-6, atol=1e-6)


def test_flips_happen_for_about_half_the_images():
    ramp = np.broadcast_to(np.arange(32, dtype=np.uint8)[None, :, None] * 8, (32, 32, 3))
    x = np.broadcast_to(ramp, (200, 32, 32, 3))
    out = np.asarray(augment(jax.random.key(5), x, mean=MEAN, std=STD, pad=0, flip=True))
    plain, mirrored = _reference_normalize(ramp), _reference_normalize(ramp[:, ::-1])
    is_plain = np.isclose(out, plain, atol=1e-6).all(axis=(1, 2, 3))
    is_mirrored = np.isclose(out, mirrored, atol=1e-6).all(axis=(1, 2, 3))
    assert (is_plain ^ is_mirrored).all()
    assert 60 < is_mirrored.sum() < 140


def test_crops_shift_content_and_pad_with_normalised_zero():
    pad = 4
    x = _batch(n=64, seed=1)
    out = np.asarray(augment(jax.random.key(7), x, mean=MEAN, std=STD, pad=pad, flip=False))
    padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    offsets = []
    for i in range(len(x)):
        matches = [
            (dy, dx)
            for dy in range(2 * pad + 1)
            for dx in range(2 * pad + 1)
            if np.allclose(out[i], _reference_normalize(padded[i, dy : dy + 32, dx : dx + 32]), atol=1e-5)
        ]
        assert len(matches) == 1
        offsets.append(matches[0])
    assert len(set(offsets)) > 10
    assert any(o != (pad, pad) for o in offsets)

    white = np.full((64, 32, 32, 3), 255, np.uint8)
    out = np.asarray(augment(jax.random.key(8), white, mean=MEAN, std=STD, pad=pad, flip=False))
    pad_value = -np.float32(MEAN) / np.float32(STD)
    is_pad = np.isclose(out, pad_value, atol=1e-6).all(axis=-1)
    is_white = np.isclose(out, (1 - np.float32(MEAN)) / np.float32(STD), atol=1e-6).all(axis=-1)
    assert (is_pad | is_white).all()
    assert is_pad.any(axis=(1, 2)).sum() > 32


@pytest.mark.parametrize("size", [6, 5])
def test_cutout_zeroes_a_square_clipped_at_borders(size):
    ones = jnp.ones((256, 32, 32, 3), jnp.float32)
    holes = np.asarray(apply_cutout(jax.random.key(11), ones, size) == 0)
    assert (holes.all(axis=-1) == holes.any(axis=-1)).all()
    holes = holes[..., 0]
    interior = clipped = 0
    for hole in holes:
        rows, cols = np.nonzero(hole.any(axis=1))[0], np.nonzero(hole.any(axis=0))[0]
        assert rows.size and cols.size
        assert hole[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].all()
        assert hole.sum() <= size * size
        touches = rows[0] == 0 or cols[0] == 0 or rows[-1] == 31 or cols[-1] == 31
        if not touches:
            assert hole.sum() == size * size
            interior += 1
        elif hole.sum() < size * size:
            clipped += 1
    assert interior > 100 and clipped > 10


def test_cutout_applies_after_normalisation():
    white = np.full((32, 32, 32, 3), 255, np.uint8)
    out = np.asarray(augment(jax.random.key(2), white, mean=MEAN, std=STD, pad=0, flip=False, cutout=8))
    zeros = (out == 0).all(axis=-1).sum(axis=(1, 2))
    assert (zeros <= 64).all() and (zeros == 64).any()


def test_works_inside_an_outer_jit():
    x = jnp.asarray(_batch())

    @jax.jit
    def step(key, images):
        return augment(key, images, mean=MEAN, std=STD, pad=4, flip=True, cutout=16).mean()

    key = jax.random.key(4)
    direct = augment(key, x, mean=MEAN, std=STD, pad=4, flip=True, cutout=16).mean()
    np.testing.assert_allclose(step(key, x), direct, rtol=1e-6)
