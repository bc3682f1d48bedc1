"""The six network morphisms of PR-DARTS as pure functions on an op's variables (SPEC §2).

`variables` is the op's variable dict as `ops.init_op` makes it: `{"params": ..., "batch_stats":
...}` with a conv op's layers under `layer_0` … `layer_n`. A morphism returns the child op and
new variables with exactly the tree structure and shapes that initialising the child would give;
the parent's arrays are never modified.

| kind | change | child weights |
|---|---|---|
| 0 kernel_up | k += 2 | kernels zero-padded by 1: exact |
| 1 kernel_down | k -= 2 | centre crop |
| 2 dil_up, 3 dil_down | dil ± 1 | copied (not function-preserving) |
| 4 insert_layer | append 1 to c_mul | new last layer near identity (see below): not function-preserving |
| 5 widen | first smallest c_mul entry += 1 | fresh filters whose consumer input weights are zero:
  exact |

Insert-layer appends ReLU → centre-one depthwise → identity pointwise → BN with fresh statistics,
so in inference mode the child is exactly ReLU(parent) / √(1 + ε): it preserves the parent's
non-negative outputs and zeroes the negative ones. On random inputs, with running statistics
calibrated to the data (a parent's output then is about zero-mean), that is a relative (L2)
output change of about 1/√2: 0.71–0.74 measured in inference mode, 0.55–0.59 in training mode
(k3/k5/k7, with and without earlier inserted layers, stride 1 and 2);
tests/models/test_morphisms.py holds these bounds.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from prdarts_jax.models.ops import uniform_fan_in
from prdarts_jax.space.opspec import OpSpec
from prdarts_jax.space.spaces import MORPH_NAMES, SearchSpace, apply_change, legal_morphisms

Variables = dict[str, Any]


def _layers(op: OpSpec) -> list[str]:
    return [f"layer_{i}" for i in range(len(op.c_mul) + 1)]


def _map_depthwise(variables: Variables, fn) -> Variables:
    params = {name: {**layer, "depthwise": fn(layer["depthwise"])}
              for name, layer in variables["params"].items()}
    return {**variables, "params": params}


def _fresh_bn(params: dict, stats: dict, c: int) -> tuple[dict, dict]:
    """Identity BN: mean 0, var 1 (and scale 1, bias 0 if the BN is affine)."""
    stats = {"mean": jnp.zeros((c,)), "var": jnp.ones((c,))}
    if params is not None:
        params = {"scale": jnp.ones((c,)), "bias": jnp.zeros((c,))}
    return params, stats


def _extend_bn(params: dict | None, stats: dict, extra: int) -> tuple[dict | None, dict]:
    stats = {"mean": jnp.concatenate([stats["mean"], jnp.zeros((extra,))]),
             "var": jnp.concatenate([stats["var"], jnp.ones((extra,))])}
    if params is not None:
        params = {"scale": jnp.concatenate([params["scale"], jnp.ones((extra,))]),
                  "bias": jnp.concatenate([params["bias"], jnp.zeros((extra,))])}
    return params, stats


def _insert_layer(parent: OpSpec, variables: Variables) -> Variables:
    params, stats = dict(variables["params"]), dict(variables["batch_stats"])
    last = params[_layers(parent)[-1]]
    c = last["pointwise"].shape[1]
    k = parent.k
    dw = jnp.zeros((k, k, c)).at[k // 2, k // 2, :].set(1.0)
    bn_params, bn_stats = _fresh_bn(last.get("bn"), {}, c)
    new = f"layer_{len(parent.c_mul) + 1}"
    params[new] = {"depthwise": dw, "pointwise": jnp.eye(c)}
    if bn_params is not None:
        params[new]["bn"] = bn_params
    stats[new] = {"bn": bn_stats}
    return {**variables, "params": params, "batch_stats": stats}


def _widen(parent: OpSpec, variables: Variables, rng: jax.Array) -> Variables:
    i = parent.c_mul.index(min(parent.c_mul))
    producer, consumer = f"layer_{i}", f"layer_{i + 1}"
    params, stats = dict(variables["params"]), dict(variables["batch_stats"])
    p, q = dict(params[producer]), dict(params[consumer])
    c_in, width = p["pointwise"].shape
    extra = width // parent.c_mul[i]
    k_pw, k_dw = jax.random.split(rng)
    k = parent.k
    p["pointwise"] = jnp.concatenate(
        [p["pointwise"], uniform_fan_in(c_in)(k_pw, (c_in, extra))], axis=1)
    bn_params, bn_stats = _extend_bn(p.get("bn"), stats[producer]["bn"], extra)
    if bn_params is not None:
        p["bn"] = bn_params
    q["depthwise"] = jnp.concatenate(
        [q["depthwise"], uniform_fan_in(k * k)(k_dw, (k, k, extra))], axis=2)
    q["pointwise"] = jnp.concatenate(
        [q["pointwise"], jnp.zeros((extra, q["pointwise"].shape[1]))], axis=0)
    params[producer], params[consumer] = p, q
    stats[producer] = {"bn": bn_stats}
    return {**variables, "params": params, "batch_stats": stats}


def morph(kind: int, parent_op: OpSpec, parent_params: Variables,
          rng: jax.Array | None = None) -> tuple[OpSpec, Variables]:
    """Applies morphism `kind` (0..5) to a conv op and its variables.

    `rng` (a JAX key) is needed only by widening, for the new filters. Legality against a search
    space is the caller's concern (`space.legal_morphisms`); this only refuses changes that cannot
    produce a valid op.
    """
    if not parent_op.is_conv:
        raise ValueError(f"op {parent_op} cannot be morphed: only conv ops have morphisms")
    child = apply_change(kind, parent_op)
    if kind == 0:
        out = _map_depthwise(parent_params, lambda w: jnp.pad(w, ((1, 1), (1, 1), (0, 0))))
    elif kind == 1:
        out = _map_depthwise(parent_params, lambda w: w[1:-1, 1:-1, :])
    elif kind in (2, 3):
        out = jax.tree.map(jnp.asarray, parent_params)
    elif kind == 4:
        out = _insert_layer(parent_op, parent_params)
    else:
        if not parent_op.c_mul:
            raise ValueError(f"op {parent_op} has no expansion to widen")
        if rng is None:
            raise ValueError("widening needs an rng key for the new filters")
        out = _widen(parent_op, parent_params, rng)
    return child, out


def sample_morph(parent_op: OpSpec, space: SearchSpace, rng: np.random.Generator) -> int | None:
    """A morphism kind drawn uniformly among the legal ones, or None if there is none."""
    legal = legal_morphisms(parent_op, space)
    if not legal:
        return None
    return int(legal[rng.integers(len(legal))])


__all__ = ["MORPH_NAMES", "morph", "sample_morph"]
