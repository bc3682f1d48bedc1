"""What the search and the retraining share: the per-epoch cosine learning rate, the SGD chain
and the cross-entropy loss."""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import optax

from prdarts_jax.models import formulations

LR_SCHEDULES = ("pytorch", "reach_min")
"""How a cycle's cosine ends. `pytorch` (the search's default): DARTS' CosineAnnealingLR with
eta_min = lr_min stepped per epoch (T_max = epochs), as the authors' release (built on the DARTS
code) and SPEC §3 ("cosine annealing per epoch ... to a minimum of 0.01") have it; its last
epoch runs one step above the minimum (0.01037 in a 10-epoch cycle from 0.025 to 0.01, 0.01016
in a 15-epoch one). `reach_min`: the last epoch runs at exactly lr_min, the paper's literal
"annealed via cosine decay to a minimum of 0.01 at the end of each cycle"."""


def cosine_lr(epoch: int, epochs: int, lr_max: float, lr_min: float, *,
              reach_min: bool = False) -> float:
    """The learning rate of `epoch` (from 0) of `epochs`: cosine from lr_max (epoch 0, exactly)
    towards lr_min, which the last epoch reaches exactly with `reach_min` (a one-epoch run stays
    at lr_max); without it, PyTorch's per-epoch CosineAnnealingLR (T_max = epochs)."""
    period = epochs - 1 if reach_min else epochs
    if period <= 0:
        return lr_max
    return lr_min + (lr_max - lr_min) * (1 + math.cos(math.pi * epoch / period)) / 2


def sgd(*, momentum: float, weight_decay: float, grad_clip: float
        ) -> optax.GradientTransformation:
    """Global-norm clip, coupled weight decay, momentum (PyTorch's SGD); the caller applies the
    learning rate, so that it can be a traced step argument."""
    return optax.chain(optax.clip_by_global_norm(grad_clip),
                       optax.add_decayed_weights(weight_decay),
                       optax.trace(decay=momentum))


def sgd_step(params: Any, state: tuple, grads: Any, lr: jax.Array | float, *, momentum: float,
             weight_decay: float, grad_clip: float) -> tuple[Any, tuple]:
    """One step of `sgd(...)` (whose optimizer state is `state`) at learning rate `lr`:
    (params - lr · update, new state). With the `sgd_update` formulation "native" in force, on
    a CPU, one C++ call does it for every leaf (`kernels/sgd_update.py`); else optax's chain."""
    trace = state[-1]
    if not isinstance(trace, optax.TraceState):
        raise TypeError(f"sgd_step needs the state of sgd(...), got {type(trace).__name__}")
    native = formulations.native_sgd_update(params, trace.trace, grads, lr, momentum=momentum,
                                            weight_decay=weight_decay, grad_clip=grad_clip)
    if native is not None:
        new_params, momenta = native
        return new_params, (*state[:-1], trace._replace(trace=momenta))
    tx = sgd(momentum=momentum, weight_decay=weight_decay, grad_clip=grad_clip)
    updates, state = tx.update(grads, state, params)
    return jax.tree.map(lambda p, u: p - lr * u, params, updates), state


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
