"""First-order bilevel training of a supernet: pure, jitted step programs.

The search state is a plain dict pytree: `params`, `batch_stats`, `alphas`, `w_opt`, `a_opt`.
Each step gathers its batch on the device from the whole (uint8) split by index, augments it with
an explicit key, and differentiates the loss. Gradient programs are separate from the optimizer
updates, so that one compiled gradient program (w.r.t. both weights and α) can serve the α step
and the weight step alike when `fuse` is set: on a CPU, where compiling dominates, that halves
compile time per cycle; on an accelerator, separate programs avoid the wasted backward work.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from prdarts_jax.data import DataSpec
from prdarts_jax.models.relaxation import SOFTMAX, Relaxation, training_sample
from prdarts_jax.optim import cross_entropy, masked_sums, sgd, sgd_step
from prdarts_jax.search.cost_penalty import CostPenalty

State = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Hyper:
    """Optimizer settings of the search (SPEC §4)."""

    lr_max: float = 0.025
    lr_min: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 3e-4
    grad_clip: float = 5.0
    alpha_lr: float = 6e-4
    alpha_betas: tuple[float, float] = (0.5, 0.999)
    alpha_weight_decay: float = 1e-3
    alpha_grad_clip: float = 5.0


def weight_tx(h: Hyper) -> optax.GradientTransformation:
    """The weights' SGD chain; the learning rate is applied by the caller."""
    return sgd(momentum=h.momentum, weight_decay=h.weight_decay, grad_clip=h.grad_clip)


def alpha_tx(h: Hyper) -> optax.GradientTransformation:
    return optax.chain(optax.clip_by_global_norm(h.alpha_grad_clip),
                       optax.add_decayed_weights(h.alpha_weight_decay),
                       optax.adam(h.alpha_lr, b1=h.alpha_betas[0], b2=h.alpha_betas[1], eps=1e-8))


def fresh_optimizer_states(h: Hyper, params: Any, alphas: Any) -> dict:
    """The weights' and α's optimizer states before their first step: all zeros (SGD's
    momentum; Adam's count and moments). Outside a trace they are copied from NumPy, as
    `optax`'s `init` would compile a broadcast per shape of parameter (0.7 s of every quick
    search, cached or not)."""
    def init(params, alphas):
        return {"w_opt": weight_tx(h).init(params), "a_opt": alpha_tx(h).init(alphas)}

    if any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves((params, alphas))):
        return init(params, alphas)
    shapes = jax.eval_shape(init, params, alphas)
    return jax.device_put(jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes))


@dataclasses.dataclass(frozen=True)
class StepPrograms:
    """The compiled programs of one (supernet, batch size) pair."""

    weight_grads: Callable[..., Any]
    alpha_grads: Callable[..., Any]
    eval_batch: Callable[..., Any]
    update_weights: Callable[..., Any]
    update_alphas: Callable[..., Any]


def make_programs(net: Any, data: DataSpec, h: Hyper, fuse: bool,
                  relaxation: Relaxation = SOFTMAX,
                  penalty: CostPenalty | None = None) -> StepPrograms:
    """Jitted programs for `net` (a Supernet). They retrace per batch shape, as jit does.

    With a stochastic `relaxation` (gumbel) the gradient programs take τ as a last argument and
    draw their edge weights from their key (`training_sample`); evaluation stays softmax(α).
    A `penalty` adds λ·∇E[cost] to the α gradient only (`with_penalty`); None: no trace of it."""

    def loss_fn(params, alphas, batch_stats, x, y, sample=None):
        logits, upd = net.apply({"params": params, "batch_stats": batch_stats}, x, alphas, True,
                                sample, mutable=["batch_stats"])
        loss = jnp.mean(cross_entropy(logits, y))
        acc = jnp.mean(jnp.argmax(logits, -1) == y)
        return loss, (upd["batch_stats"], acc)

    def batch(images, labels, idx, key):
        return data.train_batch(key, images[idx]), labels[idx]

    def grads_wrt(argnums, name):
        def program(params, alphas, batch_stats, images, labels, idx, key, *tau):
            x, y = batch(images, labels, idx, key)
            sample = training_sample(relaxation, key, *tau)  # `tau` is () for softmax
            (loss, (bs, acc)), g = jax.value_and_grad(loss_fn, argnums, has_aux=True)(
                params, alphas, batch_stats, x, y, sample)
            g = g if isinstance(g, tuple) else (g, None) if argnums == 0 else (None, g)
            metrics = {"loss": loss, "acc": acc}
            if penalty is not None and g[1] is not None:
                g, metrics = with_penalty(penalty, alphas, g, metrics)
            return g, bs, metrics
        program.__name__ = program.__qualname__ = name  # how logs and records name it
        return jax.jit(program)

    both = grads_wrt((0, 1), "grads")
    weight_grads = both if fuse else grads_wrt(0, "weight_grads")
    alpha_grads = both if fuse else grads_wrt(1, "alpha_grads")

    @jax.jit
    def eval_batch(params, alphas, batch_stats, images, labels, idx, mask):
        x = data.eval_batch(images[idx])
        logits = net.apply({"params": params, "batch_stats": batch_stats}, x, alphas, False)
        return masked_sums(logits, labels[idx], mask)

    @functools.partial(jax.jit, donate_argnums=(0, 1))
    def update_weights(params, w_opt, g, lr):
        return sgd_step(params, w_opt, g, lr, momentum=h.momentum,
                        weight_decay=h.weight_decay, grad_clip=h.grad_clip)

    @functools.partial(jax.jit, donate_argnums=(0, 1))
    def update_alphas(alphas, a_opt, g):
        updates, a_opt = alpha_tx(h).update(g, a_opt, alphas)
        return optax.apply_updates(alphas, updates), a_opt

    return StepPrograms(weight_grads, alpha_grads, eval_batch, update_weights, update_alphas)


def with_penalty(penalty: CostPenalty, alphas: Any, g: tuple, metrics: dict
                 ) -> tuple[tuple, dict]:
    """(weight grads, α grads + λ·∇E[cost]) and the metrics with `cost` = E[cost]: the penalty
    is a function of α alone, so the weight gradient is left as it is."""
    cost, g_cost = jax.value_and_grad(penalty.expected_cost)(alphas)
    g_alpha = jax.tree.map(lambda a, b: a + penalty.lam * b, g[1], g_cost)
    return (g[0], g_alpha), {**metrics, "cost": cost}


def weight_step(p: StepPrograms, state: State, *, images: jax.Array, labels: jax.Array,
                idx: jax.Array, key: jax.Array, lr: float,
                tau: tuple[jax.Array, ...] = ()) -> tuple[State, dict]:
    """One SGD step of the weights on a weight-half batch (the α stay fixed). `tau`: (τ,) for
    programs of the gumbel relaxation, () for softmax."""
    (g, _), bs, metrics = p.weight_grads(state["params"], state["alphas"], state["batch_stats"],
                                  images, labels, idx, key, *tau)
    params, w_opt = p.update_weights(state["params"], state["w_opt"], g, lr)
    return {**state, "params": params, "w_opt": w_opt, "batch_stats": bs}, metrics


def alpha_step(p: StepPrograms, state: State, *, images: jax.Array, labels: jax.Array,
               idx: jax.Array, key: jax.Array,
               tau: tuple[jax.Array, ...] = ()) -> tuple[State, dict]:
    """First-order DARTS: the α gradient of the loss on an α-half batch at the current weights.

    The forward runs in training mode and so updates BN running statistics, as in PyTorch.
    `tau` as in `weight_step`.
    """
    (_, g), bs, metrics = p.alpha_grads(state["params"], state["alphas"], state["batch_stats"],
                                        images, labels, idx, key, *tau)
    alphas, a_opt = p.update_alphas(state["alphas"], state["a_opt"], g)
    return {**state, "alphas": alphas, "a_opt": a_opt, "batch_stats": bs}, metrics
