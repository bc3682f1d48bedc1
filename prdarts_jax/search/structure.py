"""What is built for each structure (once per cycle): the supernet of the pools, its fresh
variables and train state, the abstract state a checkpoint restores into, its step programs."""

from __future__ import annotations

import dataclasses
import functools
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import ml_collections

from prdarts_jax.data import DataSpec
from prdarts_jax.loops.program_store import StoredProgram, placement_of
from prdarts_jax.models import formulations, initializers
from prdarts_jax.models.relaxation import SOFTMAX, Relaxation
from prdarts_jax.models.supernet import Supernet, init_alphas
from prdarts_jax.runtime import parallel
from prdarts_jax.search import bilevel
from prdarts_jax.search.batch_size.executables import BatchPrograms
from prdarts_jax.search.cost_penalty import CostPenalty
from prdarts_jax.search.deepen import cells_in_cycle
from prdarts_jax.search.pools import CellPools
from prdarts_jax.space.spaces import CELL_TYPES

if TYPE_CHECKING:
    from prdarts_jax.data import DatasetSpec

GRAD_BATCH_ARG = 5
"""Position of the batch's index vector among the gradient programs' arguments."""


def build_supernet(pools: CellPools, config: ml_collections.ConfigDict,
                   num_classes: int, cycle: int | None = None) -> Supernet:
    """The supernet of `pools`, with the depth of `cycle` (schedule.cells; None: layers)."""
    edges = {t: tuple(edge.ops for edge in pools[t]) for t in CELL_TYPES}
    layers = config.layers if cycle is None else cells_in_cycle(config, cycle)
    return Supernet(edges["normal"], edges["reduce"], num_classes, c=config.channels,
                    layers=layers, cell_output=config.cell_output)


def init_variables(net: Supernet, key: jax.Array, image_shape: tuple[int, ...],
                   alphas: dict) -> dict:
    """Fresh supernet variables, drawn per kind of parameter (`models/initializers.py`)."""
    x = jnp.zeros((2, *image_shape), jnp.float32)
    return initializers.init_variables(net, key, x, alphas, False)


def cycle_state(variables: dict, alphas: dict, h: bilevel.Hyper,
                placement: parallel.Placement) -> dict:
    """The train state a cycle starts from: variables, α and fresh optimizer states, replicated
    over the devices."""
    return placement.replicate({
        "params": variables["params"], "batch_stats": variables["batch_stats"],
        "alphas": alphas, **bilevel.fresh_optimizer_states(h, variables["params"], alphas)})


def abstract_state(net: Supernet, info: DatasetSpec, h: bilevel.Hyper,
                   placement: parallel.Placement) -> dict:
    """Shapes, dtypes and shardings of the train state of `net`: a checkpoint's restore target."""
    x = jnp.zeros((2, *info.image_shape), jnp.float32)

    def init():
        alphas = init_alphas(jax.random.PRNGKey(0), net.normal, net.reduce)
        v = net.init(jax.random.PRNGKey(0), x, alphas, False)
        return {"params": v["params"], "batch_stats": v["batch_stats"], "alphas": alphas,
                **bilevel.fresh_optimizer_states(h, v["params"], alphas)}

    return placement.abstract(jax.eval_shape(init))


def restore_target(meta: dict, config: ml_collections.ConfigDict, info: DatasetSpec,
                   h: bilevel.Hyper, placement: parallel.Placement) -> dict:
    """The abstract state a checkpoint with `meta` restores into. The finished search's
    checkpoint holds the last cycle's state, whose pools (`state_pools`) are not the final
    pools it records."""
    pools = CellPools.from_json(meta.get("state_pools", meta["pools"]))
    net = build_supernet(pools, config, info.num_classes, cycle=meta["position"][0])
    return abstract_state(net, info, h, placement)


def programs_for(net: Supernet, data: DataSpec, h: bilevel.Hyper,
                 fuse: bool, compile_threads: int = 0,
                 relaxation: Relaxation = SOFTMAX,
                 penalty: CostPenalty | None = None) -> bilevel.StepPrograms:
    """Step programs per structure, kept for the process; the gradient programs keep their
    executables per batch size and can compile sizes ahead in `compile_threads` threads.
    `relaxation` is part of the key (gumbel's τ is a step argument, not), and so is the cost
    `penalty` (λ and its table are baked in).

    The learning rate is a step argument, so it is not part of the key; the formulations of
    the primitives in force are."""
    impls = formulations.in_force()
    return _programs(net, data, dataclasses.replace(h, lr_max=0.0, lr_min=0.0), fuse, impls,
                     compile_threads, relaxation, penalty)


@functools.lru_cache(maxsize=8)
def _programs(net, data, h, fuse, impls, compile_threads, relaxation=SOFTMAX, penalty=None):
    """The programs, with the executables of the gradients, the evaluation and the weights'
    update taken from the program store when it holds them (`loops/program_store.py`)."""
    p = bilevel.make_programs(net, data, h, fuse, relaxation, penalty=penalty)
    what = repr((net, data, h, fuse, impls, relaxation, penalty))  # all a program depends on

    def identity(program):
        return f"{program.__name__}|{what}"

    grads = {name: BatchPrograms(getattr(p, name), GRAD_BATCH_ARG, compile_threads,
                                 identity=identity(getattr(p, name)))
             for name in ("weight_grads", "alpha_grads")}
    if p.weight_grads is p.alpha_grads:
        grads["alpha_grads"] = grads["weight_grads"]
    stored = {
        "eval_batch": StoredProgram(p.eval_batch, identity(p.eval_batch),
                                    lambda args: placement_of(args[0], args[GRAD_BATCH_ARG])),
        "update_weights": StoredProgram(p.update_weights, identity(p.update_weights),
                                        lambda args: placement_of(args[0]))}
    return dataclasses.replace(p, **grads, **stored)
