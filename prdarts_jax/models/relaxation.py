"""The mixed op's relaxation: how an edge's α become the weights of its candidate ops.

`softmax` (DARTS, the paper): w = softmax(α), deterministic. `gumbel` (the Concrete
distribution, as SNAS and GDAS): w = softmax((α + g) / τ) with g ~ Gumbel(0, 1) drawn afresh
per edge and step; `hard` makes it one_hot(argmax w) in the forward pass with the gradient of
the soft sample (straight-through, as GDAS). One sample per edge and cell type per forward pass,
shared by all cells of that type (as GDAS's reference code does; α is per cell type too).
"""

from __future__ import annotations

import dataclasses

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from prdarts_jax.space.spaces import CELL_TYPES

GUMBEL_STREAM = 0x6D62
"""Folded into a training step's key to give its Gumbel noise: the augmentation key is the
step's key itself, so its stream is the same with and without the noise."""


@dataclasses.dataclass(frozen=True)
class Relaxation:
    """Static (compile-time) part of the relaxation; τ is a traced step argument."""

    kind: str = "softmax"
    hard: bool = False

    @property
    def stochastic(self) -> bool:
        return self.kind == "gumbel"


SOFTMAX = Relaxation()


@flax.struct.dataclass
class GumbelSample:
    """What a training forward pass needs to draw its edge weights: a key, τ (both traced: a
    pytree), hard or soft (static)."""

    key: jax.Array
    tau: jax.Array
    hard: bool = flax.struct.field(pytree_node=False, default=False)


def gumbel_softmax(key: jax.Array, logits: jax.Array, tau: jax.Array | float,
                   hard: bool = False) -> jax.Array:
    """One Concrete sample softmax((logits + g) / τ); `hard`: its one-hot argmax in the forward
    pass with the soft sample's gradient (y_hard - stop_gradient(y) + y)."""
    return _concrete(logits + jax.random.gumbel(key, logits.shape, logits.dtype), tau, hard)


def _concrete(perturbed: jax.Array, tau: jax.Array | float, hard: bool) -> jax.Array:
    """softmax(perturbed / τ), or its straight-through one-hot."""
    y = jax.nn.softmax(perturbed / tau)
    if not hard:
        return y
    y_hard = jax.nn.one_hot(jnp.argmax(y), y.shape[-1], dtype=y.dtype)
    return y_hard - jax.lax.stop_gradient(y) + y


def edge_weights(alphas: dict, sample: GumbelSample | None = None) -> dict:
    """{cell type: [weights of edge e]}: softmax(α) without a sample (evaluation, and the
    softmax relaxation); with one, an independent Concrete sample per edge and cell type.
    The noise of a cell type's edges is one draw, sliced per edge (one random-bits computation
    per type instead of one per edge: cheaper to compile)."""
    if sample is None:
        return {t: [jax.nn.softmax(a) for a in alphas[t]] for t in CELL_TYPES}
    out = {}
    for i, t in enumerate(CELL_TYPES):
        sizes = [a.shape[-1] for a in alphas[t]]
        g = jax.random.gumbel(jax.random.fold_in(sample.key, i), (sum(sizes),), alphas[t][0].dtype)
        starts = np.cumsum([0, *sizes])
        out[t] = [_concrete(a + g[s:s + n], sample.tau, sample.hard)
                  for a, s, n in zip(alphas[t], starts, sizes)]
    return out


def training_sample(relaxation: Relaxation, key: jax.Array,
                    tau: jax.Array | None = None) -> GumbelSample | None:
    """The sample of a training step whose (augmentation) key is `key`; None for softmax.
    τ is required exactly when the relaxation is stochastic (catches programs and steps built
    for different relaxations)."""
    if (tau is not None) != relaxation.stochastic:
        raise TypeError(f"relaxation {relaxation.kind!r} takes "
                        f"{'a' if relaxation.stochastic else 'no'} temperature argument")
    if not relaxation.stochastic:
        return None
    return GumbelSample(jax.random.fold_in(key, GUMBEL_STREAM), tau, relaxation.hard)
