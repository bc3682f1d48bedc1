"""JAX's uniform random numbers computed on the host with NumPy, bit for bit.

A cold search's first fresh variables needed a program of random-number code for every kind of
parameter (`initializers._drawer`: its XLA compile took 2.8 s on two cores for the quick
supernet, for a program run once).
The same values come from NumPy in milliseconds: threefry-2x32 on each element's 64-bit
counter (JAX's partitionable `random_bits`), then `jax.random.uniform`'s arithmetic. The
drawer compiles without XLA's optimisation passes, which on a CPU do not contract its
multiply-add, so NumPy's separate multiply and add give its bits. Where JAX would draw
otherwise (another backend, generator or dtype, the legacy non-partitionable bits) `supported`
says no and the caller compiles.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_PARITY = np.uint32(0x1BD11BDA)


def supported(shape: tuple[int, ...], dtype: Any) -> bool:
    """Whether `uniform` gives the unoptimised program's bits for `shape` and `dtype` under the
    settings now: float32, threefry-2x32 with partitionable bits, on a CPU (XLA:GPU may fuse
    the multiply-add even without optimisation)."""
    return (np.dtype(dtype) == np.float32 and len(shape) > 0
            and jax.config.jax_default_prng_impl == "threefry2x32"
            and bool(jax.config.jax_threefry_partitionable)
            and jax.default_backend() == "cpu")


def _rotate_left(x: np.ndarray, d: int) -> np.ndarray:
    return (x << np.uint32(d)) | (x >> np.uint32(32 - d))


def threefry2x32(k1: np.ndarray, k2: np.ndarray, x0: np.ndarray, x1: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Threefry-2x32 (20 rounds) of the counters (x0, x1) under the keys (k1, k2), uint32
    arrays broadcast against each other, with JAX's rotations and key schedule."""
    ks = (k1, k2, k1 ^ k2 ^ _PARITY)
    with np.errstate(over="ignore"):
        x0, x1 = x0 + ks[0], x1 + ks[1]
        for i in range(5):
            for r in _ROTATIONS[i % 2]:
                x0 = x0 + x1
                x1 = x0 ^ _rotate_left(x1, r)
            x0 = x0 + ks[(i + 1) % 3]
            x1 = x1 + ks[(i + 2) % 3] + np.uint32(i + 1)
    return x0, x1


def random_bits32(keys: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """`jax.random.bits(key, shape, uint32)` for each raw key of `keys` (n, 2): (n, *shape)."""
    keys = np.asarray(keys, np.uint32).reshape(-1, 2)
    count = np.arange(int(np.prod(shape)), dtype=np.uint64)
    hi = (count >> np.uint64(32)).astype(np.uint32)[None]
    lo = (count & np.uint64(0xFFFFFFFF)).astype(np.uint32)[None]
    b1, b2 = threefry2x32(keys[:, :1], keys[:, 1:], hi, lo)
    return (b1 ^ b2).reshape(len(keys), *shape)


def uniform(keys: np.ndarray, shape: tuple[int, ...], minval: float, maxval: float
            ) -> np.ndarray:
    """`jax.random.uniform(key, shape, float32, minval, maxval)` for each raw key of `keys`
    (n, 2), as compiled without optimisation: (n, *shape) float32. Check `supported` first."""
    bits = random_bits32(keys, shape)
    one = np.array(1.0, np.float32)
    floats = ((bits >> np.uint32(9)) | one.view(np.uint32)).view(np.float32) - one
    lo, hi = np.float32(minval), np.float32(maxval)
    return np.maximum(lo, floats * (hi - lo) + lo)
