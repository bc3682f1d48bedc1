"""DARTS-style training augmentation on uint8 batches, on device and inside jit.

Order follows torchvision's `RandomCrop(padding) -> RandomHorizontalFlip ->
ToTensor -> Normalize -> Cutout`: padding is zero in raw pixel space (so padded
pixels normalise to -mean/std) and cutout zeroes after normalisation.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp

Stats = Sequence[float] | jax.Array


def normalize(images: jax.Array, mean: Stats, std: Stats) -> jax.Array:
    """uint8 (or [0, 255] float) NHWC -> float32 (x / 255 - mean) / std."""
    x = jnp.asarray(images).astype(jnp.float32) / 255.0
    return (x - jnp.asarray(mean, jnp.float32)) / jnp.asarray(std, jnp.float32)


def random_crop(key: jax.Array, images: jax.Array, pad: int) -> jax.Array:
    """Zero-pads each NHWC image by `pad` and crops back at a uniform per-image offset."""
    if pad == 0:
        return images
    n, h, w, c = images.shape
    padded = jnp.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    offsets = jax.random.randint(key, (n, 2), 0, 2 * pad + 1)
    crop = lambda image, o: jax.lax.dynamic_slice(image, (o[0], o[1], 0), (h, w, c))
    return jax.vmap(crop)(padded, offsets)


def random_flip(key: jax.Array, images: jax.Array) -> jax.Array:
    """Mirrors each image left-right with probability 1/2."""
    flip = jax.random.bernoulli(key, 0.5, (images.shape[0],))
    return jnp.where(flip[:, None, None, None], images[:, :, ::-1, :], images)


def apply_cutout(key: jax.Array, images: jax.Array, size: int) -> jax.Array:
    """Zeroes a size x size square per image, centre uniform over the image.

    Rows [cy - size//2, cy - size//2 + size) (same for columns), clipped at the
    borders; for even sizes this is exactly DARTS' Cutout.
    """
    if size == 0:
        return images
    n, h, w, _ = images.shape
    ky, kx = jax.random.split(key)
    top = jax.random.randint(ky, (n, 1), 0, h) - size // 2
    left = jax.random.randint(kx, (n, 1), 0, w) - size // 2
    rows = jnp.arange(h)[None, :]
    cols = jnp.arange(w)[None, :]
    in_rows = (rows >= top) & (rows < top + size)
    in_cols = (cols >= left) & (cols < left + size)
    hole = in_rows[:, :, None] & in_cols[:, None, :]
    return jnp.where(hole[..., None], jnp.zeros((), images.dtype), images)


@functools.partial(jax.jit, static_argnames=("pad", "flip", "cutout"))
def augment(
    key: jax.Array,
    images: jax.Array,
    *,
    mean: Stats,
    std: Stats,
    pad: int,
    flip: bool = True,
    cutout: int = 0,
) -> jax.Array:
    """uint8 NHWC batch -> augmented, normalised float32 NHWC batch.

    Crop, flip and cutout draw from fixed sub-keys of `key`, so one key always
    gives the same batch and toggling one op leaves the others' draws unchanged.
    """
    crop_key, flip_key, cutout_key = jax.random.split(key, 3)
    x = jnp.asarray(images).astype(jnp.float32)
    x = random_crop(crop_key, x, pad)
    if flip:
        x = random_flip(flip_key, x)
    x = normalize(x, mean, std)
    return apply_cutout(cutout_key, x, cutout)


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """What the in-jit input pipeline of a step needs (static, hashable): the dataset's channel
    statistics and crop padding, and the training augmentation's flip and cutout."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    pad: int
    flip: bool = True
    cutout: int = 0

    def train_batch(self, key: jax.Array, images: jax.Array) -> jax.Array:
        """Augmented, normalised training inputs from uint8 images."""
        return augment(key, images, mean=self.mean, std=self.std, pad=self.pad, flip=self.flip,
                       cutout=self.cutout)

    def eval_batch(self, images: jax.Array) -> jax.Array:
        """Normalised inputs without augmentation (inference)."""
        return normalize(images, self.mean, self.std)
