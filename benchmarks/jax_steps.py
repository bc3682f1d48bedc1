"""The JAX side of the side-by-side benchmarks: prdarts_jax's step programs on a given batch.

`prdarts_jax.search.bilevel.make_programs` and `prdarts_jax.train.programs.make_programs` gather and augment
their batch inside the step; the PyTorch reference gets a ready batch (its data loader's work is
not timed). To time the same work in both frameworks, the programs here take a ready float
batch and are otherwise built like the project's: the same Flax modules, bilevel's optimizer
settings and optax chains, the same program split, and the same buffer donation.

This module imports only prdarts_jax modules that need neither tensorflow-datasets nor
ml_collections (`bilevel`, `supernet`, `network`, `ops`, `memory`, …), so it runs on a bare GPU
machine (`tests/bench/test_torch_reference.py` checks that).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from prdarts_jax.models.network import Network
from prdarts_jax.models.supernet import Supernet
from prdarts_jax.search import bilevel
from prdarts_jax.search.batch_size.memory import transient_bytes

State = dict[str, Any]


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    return jnp.mean(bilevel.cross_entropy(logits, labels))


def random_variables(net: Any, x_shape: tuple[int, ...], init_args: tuple, seed: int = 0
                     ) -> dict:
    """Weights drawn on the host (PyTorch's default init bounds, U(±1/√fan_in)) and fresh BN
    statistics: compiling the network's initialiser would cost more than the step timed."""
    x = jax.ShapeDtypeStruct(x_shape, jnp.float32)
    shapes = jax.eval_shape(lambda x: net.init(jax.random.PRNGKey(0), x, *init_args), x)
    rng = np.random.default_rng(seed)

    def param(path, s):
        name = path[-1].key
        if name == "scale":
            return jnp.ones(s.shape, s.dtype)
        if name == "bias":
            return jnp.zeros(s.shape, s.dtype)
        # every kernel layout here has its fan-in on the leading axes: (k, k, C) depthwise,
        # (C_in, C_out) 1×1 and Dense, (k, k, C_in, C_out) full convs
        bound = 1.0 / np.sqrt(int(np.prod(s.shape[:-1])))
        return jnp.asarray(rng.uniform(-bound, bound, s.shape), s.dtype)

    params = jax.tree_util.tree_map_with_path(param, shapes["params"])
    stats = jax.tree_util.tree_map_with_path(
        lambda path, s: jnp.full(s.shape, float(path[-1].key == "var"), s.dtype),
        shapes.get("batch_stats", {}))
    return {"params": params, "batch_stats": stats}


def tree_bytes(tree: Any) -> int:
    return sum(int(leaf.size) * leaf.dtype.itemsize for leaf in jax.tree.leaves(tree))


@dataclasses.dataclass
class Compiled:
    """AOT-compiled programs of one step and what compiling them cost."""

    programs: dict[str, Any]
    seconds: float

    def transient_bytes(self) -> int:
        """The largest allocation any one program makes on top of its arguments (XLA's
        buffer assignment); the programs of a step run one after another."""
        return max(transient_bytes(p) for p in self.programs.values())


def _compile(jitted: Callable, *args: Any) -> Any:
    return jitted.trace(*args).lower().compile()


class SearchStep:
    """First-order search step, as `bilevel.alpha_step` then `bilevel.weight_step`.

    `fused=False` (the project's layout): four programs, the α gradient, the α update
    (donating α and its optimizer state), the weight gradient and the weight update (donating
    the weights and momentum). `fused=True`: one program for the whole step, donating the whole
    state (an experiment: it saves dispatches and lets XLA overlap the two halves).
    """

    def __init__(self, net: Supernet, h: bilevel.Hyper = bilevel.Hyper(), fused: bool = False):
        self.net, self.h, self.fused = net, h, fused
        w_tx = bilevel.weight_tx(h)
        a_tx = bilevel.alpha_tx(h)
        self.w_tx, self.a_tx = w_tx, a_tx

        def loss_fn(params, alphas, batch_stats, x, y):
            logits, upd = net.apply({"params": params, "batch_stats": batch_stats}, x, alphas,
                                    True, mutable=["batch_stats"])
            return cross_entropy(logits, y), upd["batch_stats"]

        def alpha_grads(params, alphas, batch_stats, x, y):
            (loss, bs), g = jax.value_and_grad(loss_fn, 1, has_aux=True)(
                params, alphas, batch_stats, x, y)
            return g, bs, loss

        def weight_grads(params, alphas, batch_stats, x, y):
            (loss, bs), g = jax.value_and_grad(loss_fn, 0, has_aux=True)(
                params, alphas, batch_stats, x, y)
            return g, bs, loss

        def update_weights(params, w_opt, g, lr):
            updates, w_opt = w_tx.update(g, w_opt, params)
            return jax.tree.map(lambda p, u: p - lr * u, params, updates), w_opt

        def update_alphas(alphas, a_opt, g):
            updates, a_opt = a_tx.update(g, a_opt, alphas)
            return optax.apply_updates(alphas, updates), a_opt

        def whole_step(state, xa, ya, xw, yw, lr):
            g, bs, loss_a = alpha_grads(state["params"], state["alphas"], state["batch_stats"],
                                        xa, ya)
            alphas, a_opt = update_alphas(state["alphas"], state["a_opt"], g)
            g, bs, loss_w = weight_grads(state["params"], alphas, bs, xw, yw)
            params, w_opt = update_weights(state["params"], state["w_opt"], g, lr)
            return ({"params": params, "alphas": alphas, "batch_stats": bs, "w_opt": w_opt,
                     "a_opt": a_opt}, (loss_a, loss_w))

        self.loss_fn = jax.jit(loss_fn)
        self._jit = {
            "alpha_grads": jax.jit(alpha_grads),
            "update_alphas": jax.jit(update_alphas, donate_argnums=(0, 1)),
            "weight_grads": jax.jit(weight_grads),
            "update_weights": jax.jit(update_weights, donate_argnums=(0, 1)),
            "step": jax.jit(whole_step, donate_argnums=(0,)),
        }
        self.compiled: Compiled | None = None

    def init_state(self, variables: dict, alphas: dict) -> State:
        return {"params": variables["params"], "batch_stats": variables["batch_stats"],
                "alphas": alphas, "w_opt": self.w_tx.init(variables["params"]),
                "a_opt": self.a_tx.init(alphas)}

    def compile(self, state: State, xa, ya, xw, yw, lr) -> Compiled:
        """Traces, lowers and compiles the step's programs ahead of time (timed)."""
        t0 = time.perf_counter()
        lr = jnp.float32(lr)
        if self.fused:
            programs = {"step": _compile(self._jit["step"], state, xa, ya, xw, yw, lr)}
        else:
            p, a, bs = state["params"], state["alphas"], state["batch_stats"]
            ga = jax.eval_shape(self._jit["alpha_grads"], p, a, bs, xa, ya)[0]
            gw = jax.eval_shape(self._jit["weight_grads"], p, a, bs, xw, yw)[0]
            programs = {
                "alpha_grads": _compile(self._jit["alpha_grads"], p, a, bs, xa, ya),
                "update_alphas": _compile(self._jit["update_alphas"], a, state["a_opt"], ga),
                "weight_grads": _compile(self._jit["weight_grads"], p, a, bs, xw, yw),
                "update_weights": _compile(self._jit["update_weights"], p, state["w_opt"], gw,
                                           lr),
            }
        self.compiled = Compiled(programs, time.perf_counter() - t0)
        return self.compiled

    def program(self, name: str) -> Callable:
        """One of the programs by name (`alpha_grads`, `update_alphas`, `weight_grads`,
        `update_weights`, `step`): the compiled one when `compile` ran, else the jitted one."""
        if self.compiled and name in self.compiled.programs:
            return self.compiled.programs[name]
        return self._jit[name]

    def alpha_gradient(self, state: State, x, y) -> tuple[Any, Any, jax.Array]:
        """(α gradient, updated BN statistics, loss) at the state's weights."""
        return self.program("alpha_grads")(state["params"], state["alphas"],
                                           state["batch_stats"], x, y)

    def __call__(self, state: State, xa, ya, xw, yw, lr) -> tuple[State, tuple]:
        """One α step then one weight step; returns the new state and both losses (not
        waited for: call `jax.block_until_ready` on them to time the step)."""
        lr = jnp.float32(lr)
        if self.fused:
            return self.program("step")(state, xa, ya, xw, yw, lr)
        g, bs, loss_a = self.alpha_gradient(state, xa, ya)
        alphas, a_opt = self.program("update_alphas")(state["alphas"], state["a_opt"], g)
        g, bs, loss_w = self.program("weight_grads")(state["params"], alphas, bs, xw, yw)
        params, w_opt = self.program("update_weights")(state["params"], state["w_opt"], g, lr)
        return ({"params": params, "alphas": alphas, "batch_stats": bs, "w_opt": w_opt,
                 "a_opt": a_opt}, (loss_a, loss_w))


class TrainStep:
    """The retraining step, as `train.programs.make_programs`' `train_step` without the in-step
    augmentation: one program, state donated, lr and drop probability traced."""

    def __init__(self, net: Network, momentum: float = 0.9, weight_decay: float = 3e-4,
                 grad_clip: float = 5.0, aux_weight: float = 0.4):
        self.net = net
        self.tx = tx = bilevel.weight_tx(bilevel.Hyper(momentum=momentum, weight_decay=weight_decay,
                                                       grad_clip=grad_clip))

        def loss_fn(params, batch_stats, x, y, key, drop_prob):
            (logits, aux), upd = net.apply({"params": params, "batch_stats": batch_stats}, x,
                                           True, drop_prob, rngs={"drop_path": key},
                                           mutable=["batch_stats"])
            loss = cross_entropy(logits, y)
            if aux is not None:
                loss = loss + aux_weight * cross_entropy(aux, y)
            return loss, upd["batch_stats"]

        def step(state, x, y, key, lr, drop_prob):
            (loss, bs), g = jax.value_and_grad(loss_fn, has_aux=True)(
                state["params"], state["batch_stats"], x, y, key, drop_prob)
            updates, opt_state = tx.update(g, state["opt_state"], state["params"])
            params = jax.tree.map(lambda p, u: p - lr * u, state["params"], updates)
            return {"params": params, "batch_stats": bs, "opt_state": opt_state}, loss

        self.loss_fn = jax.jit(loss_fn)
        self._step = jax.jit(step, donate_argnums=(0,))
        self.compiled: Compiled | None = None

    def init_state(self, variables: dict) -> State:
        return {"params": variables["params"], "batch_stats": variables["batch_stats"],
                "opt_state": self.tx.init(variables["params"])}

    def compile(self, state: State, x, y, key, lr, drop_prob) -> Compiled:
        t0 = time.perf_counter()
        program = _compile(self._step, state, x, y, key, jnp.float32(lr), jnp.float32(drop_prob))
        self.compiled = Compiled({"step": program}, time.perf_counter() - t0)
        return self.compiled

    def __call__(self, state: State, x, y, key, lr, drop_prob) -> tuple[State, jax.Array]:
        step = self.compiled.programs["step"] if self.compiled else self._step
        return step(state, x, y, key, jnp.float32(lr), jnp.float32(drop_prob))


def copy_tree(tree: Any) -> Any:
    """A copy with fresh buffers (the steps donate theirs)."""
    return jax.tree.map(jnp.copy, tree)
