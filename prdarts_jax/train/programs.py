"""What retraining compiles for a genotype: the final network, the SGD chain, the train step
(batch gathered by index on the device from the whole uint8 split and augmented in jit; lr and
drop-path probability are traced arguments), the masked eval batch, and the initial state.

The train state is a plain dict pytree: `params`, `batch_stats`, `opt_state`.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import chex
import jax
import jax.numpy as jnp
import ml_collections
import optax

from prdarts_jax.data import DataSpec, dataset_info
from prdarts_jax.loops.compile import compile_unoptimized
from prdarts_jax.models.network import Network
from prdarts_jax.optim import cross_entropy, masked_sums, sgd
from prdarts_jax.runtime import parallel
from prdarts_jax.space.genotypes import Genotype

State = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class StepSettings:
    """What the compiled step depends on besides the network and the data (static)."""

    momentum: float = 0.9
    weight_decay: float = 3e-4
    grad_clip: float = 5.0
    aux_weight: float = 0.4


def step_settings(config: ml_collections.ConfigDict) -> StepSettings:
    return StepSettings(config.momentum, config.weight_decay, config.grad_clip,
                        config.aux_weight)


def data_spec(config: ml_collections.ConfigDict) -> DataSpec:
    info = dataset_info(config.dataset)
    return DataSpec(tuple(info.mean), tuple(info.std), info.pad, bool(config.flip),
                    int(config.cutout))


def build_network(config: ml_collections.ConfigDict, genotype: Genotype) -> Network:
    return Network(genotype, dataset_info(config.dataset).num_classes, config.channels,
                   config.layers, auxiliary=config.aux_weight > 0)


def optimizer(s: StepSettings) -> optax.GradientTransformation:
    """Global-norm clip, coupled weight decay, momentum (PyTorch SGD); the caller applies lr."""
    return sgd(momentum=s.momentum, weight_decay=s.weight_decay, grad_clip=s.grad_clip)


def compute_loss(net: Network, variables: dict, x: jax.Array, y: jax.Array, key: jax.Array,
                 drop_prob: jax.Array | float, aux_weight: float) -> tuple[jax.Array, dict]:
    """Training-mode loss CE + aux_weight · CE_aux (batch means), and what the step needs."""
    (logits, aux_logits), upd = net.apply(variables, x, True, drop_prob,
                                          rngs={"drop_path": key}, mutable=["batch_stats"])
    ce = jnp.mean(cross_entropy(logits, y))
    ce_aux = (jnp.mean(cross_entropy(aux_logits, y)) if aux_logits is not None
              else jnp.zeros(()))
    loss = ce + aux_weight * ce_aux
    acc = jnp.mean(jnp.argmax(logits, -1) == y)
    return loss, {"batch_stats": upd["batch_stats"], "logits": logits, "aux_logits": aux_logits,
                  "ce": ce, "ce_aux": ce_aux, "acc": acc}


@dataclasses.dataclass(frozen=True)
class Programs:
    """The jitted programs of one (network, data, settings) triple."""

    train_step: Callable[..., tuple[State, dict]]
    eval_batch: Callable[..., tuple[jax.Array, jax.Array]]


def make_programs(net: Network, data: DataSpec, s: StepSettings) -> Programs:
    """The train step (state donated) and the masked eval batch; both retrace only on new
    shapes, since lr and the drop probability are traced arguments."""
    tx = optimizer(s)

    def train_step(state: State, images: jax.Array, labels: jax.Array, idx: jax.Array,
                   key: jax.Array, lr: jax.Array, drop_prob: jax.Array) -> tuple[State, dict]:
        chex.assert_rank(idx, 1)
        aug_key, drop_key = jax.random.split(key)
        x = data.train_batch(aug_key, images[idx])
        y = labels[idx]

        def loss_fn(params):
            variables = {"params": params, "batch_stats": state["batch_stats"]}
            return compute_loss(net, variables, x, y, drop_key, drop_prob, s.aux_weight)

        (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"])
        updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
        params = jax.tree.map(lambda p, u: p - lr * u, state["params"], updates)
        new_state = {"params": params, "batch_stats": aux["batch_stats"], "opt_state": opt_state}
        return new_state, {"loss": loss, "ce": aux["ce"], "acc": aux["acc"]}

    def eval_batch(params: Any, batch_stats: Any, images: jax.Array, labels: jax.Array,
                   idx: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
        x = data.eval_batch(images[idx])
        logits, _ = net.apply({"params": params, "batch_stats": batch_stats}, x, False)
        return masked_sums(logits, labels[idx], mask)

    return Programs(jax.jit(train_step, donate_argnums=(0,)), jax.jit(eval_batch))


@functools.lru_cache(maxsize=4)
def programs_for(net: Network, data: DataSpec, s: StepSettings) -> Programs:
    """Programs kept for the process, so that runs of one structure share their compiles."""
    return make_programs(net, data, s)


def _init_fn(net: Network, image_shape: tuple[int, ...], tx: optax.GradientTransformation
             ) -> Callable[[jax.Array], State]:
    x = jnp.zeros((2, *image_shape), jnp.float32)

    def init(key: jax.Array) -> State:
        params_key, drop_key = jax.random.split(key)
        v = net.init({"params": params_key, "drop_path": drop_key}, x, True)
        return {"params": v["params"], "batch_stats": v["batch_stats"],
                "opt_state": tx.init(v["params"])}

    return init


@functools.lru_cache(maxsize=4)
def _init_program(net: Network, image_shape: tuple[int, ...], s: StepSettings
                  ) -> Callable[[jax.Array], State]:
    """The compiled init. On a CPU it is compiled without XLA optimisation: it runs once, and
    optimising hundreds of random initialisers costs minutes there."""
    init = _init_fn(net, image_shape, optimizer(s))
    if jax.default_backend() != "cpu":
        return jax.jit(init)
    return compile_unoptimized(init, jax.random.PRNGKey(0))


def init_state(net: Network, key: jax.Array, image_shape: tuple[int, ...], s: StepSettings,
               placement: parallel.Placement | None = None) -> State:
    """Fresh train state: initialised variables and an empty optimizer state, replicated over
    the placement's devices like a restored state, so that both hit the same compiled step."""
    state = _init_program(net, tuple(image_shape), s)(key)
    return (placement or parallel.data_placement(1)).replicate(state)


def abstract_state(net: Network, image_shape: tuple[int, ...], s: StepSettings,
                   placement: parallel.Placement) -> State:
    """Shapes, dtypes and the replicated sharding of the train state: a restore target."""
    shapes = jax.eval_shape(_init_fn(net, image_shape, optimizer(s)), jax.random.PRNGKey(0))
    return placement.abstract(shapes)
