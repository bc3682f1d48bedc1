"""What the search and the retraining share: the per-epoch cosine learning rate, the SGD chain
and the cross-entropy loss."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import optax


def cosine_lr(epoch: int, epochs: int, lr_max: float, lr_min: float) -> float:
    """PyTorch's CosineAnnealingLR stepped per epoch (T_max = epochs); the search restarts it
    every cycle."""
    return lr_min + (lr_max - lr_min) * (1 + math.cos(math.pi * epoch / epochs)) / 2


def sgd(*, momentum: float, weight_decay: float, grad_clip: float
        ) -> optax.GradientTransformation:
    """Global-norm clip, coupled weight decay, momentum (PyTorch's SGD); the caller applies the
    learning rate, so that it can be a traced step argument."""
    return optax.chain(optax.clip_by_global_norm(grad_clip),
                       optax.add_decayed_weights(weight_decay),
                       optax.trace(decay=momentum))


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Per-example softmax cross entropy with integer labels."""
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels)


def masked_sums(logits: jax.Array, labels: jax.Array, mask: jax.Array
                ) -> tuple[jax.Array, jax.Array]:
    """(sum of the cross entropies, number of correct predictions) over the examples where
    `mask` is 1: an evaluation batch padded to a fixed shape."""
    losses = cross_entropy(logits, labels)
    correct = jnp.argmax(logits, -1) == labels
    return jnp.sum(losses * mask), jnp.sum(correct * mask)
