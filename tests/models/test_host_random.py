import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prdarts_jax.models import host_random, initializers
from prdarts_jax.models.initializers import UniformFanIn

SHAPES = [(3, 3, 1, 8), (1, 1, 8, 16), (8, 10), (5, 5, 1, 16), (7,), (1,), (2, 3, 5)]


@pytest.mark.parametrize("key, count, want", [
    ((0, 0), (0, 0), (0x6B200159, 0x99BA4EFE)),
    ((0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF), (0x1CB996FC, 0xBB002BE7)),
    ((0x13198A2E, 0x03707344), (0x243F6A88, 0x85A308D3), (0xC4923A9C, 0x483DF7A0)),
])
def test_threefry_matches_the_reference_answers(key, count, want):
    """Random123's known answers for threefry-2x32 with 20 rounds."""
    got = host_random.threefry2x32(*(np.uint32(v) for v in (*key, *count)))
    assert tuple(int(v) for v in got) == want


@pytest.mark.parametrize("shape", SHAPES)
def test_random_bits_are_jax_bits(shape):
    keys = np.array([[0, 0], [1, 2], [0xDEADBEEF, 0x12345678]], np.uint32)
    got = host_random.random_bits32(keys, shape)
    assert got.shape == (3, *shape) and got.dtype == np.uint32
    for k, bits in zip(keys, got):
        np.testing.assert_array_equal(bits, jax.random.bits(jnp.asarray(k), shape, jnp.uint32))


@pytest.mark.parametrize("shape", SHAPES)
def test_uniform_is_the_bits_of_the_compiled_drawer(shape):
    """The drawer that `init_variables` used for every parameter (compiled without
    optimisation): the same bits, for several keys and bounds."""
    rng = np.random.default_rng(sum(shape))
    keys = rng.integers(0, 2**32, (5, 2), dtype=np.uint64).astype(np.uint32)
    for bound in (0.5, 1 / np.sqrt(72), 1 / np.sqrt(3)):
        recipe = UniformFanIn(float(bound))
        want = initializers._drawer(((recipe, shape, jnp.float32, len(keys)),))([keys])[0]
        got = host_random.uniform(keys, shape, -recipe.bound, recipe.bound)
        assert got.dtype == np.float32
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, np.asarray(b))
        assert np.all(np.abs(got) <= np.float32(bound))


def test_only_what_numpy_draws_as_jax_is_supported():
    assert host_random.supported((3, 4), np.float32)
    assert not host_random.supported((3, 4), jnp.bfloat16)
    assert not host_random.supported((3, 4), np.float64)
    assert not host_random.supported((), np.float32)
    assert UniformFanIn(0.5).host_draw(np.zeros((1, 2), np.uint32), (3,), jnp.bfloat16) is None
    for setting, value in ((jax.threefry_partitionable, False),
                           (jax.default_prng_impl, "philox4x32")):
        with setting(value):
            assert not host_random.supported((3, 4), np.float32)
