"""The models' initialisers, and fresh variables without compiling a program per parameter.

`Module.init` compiled as one program costs XLA a few kernels of random-number code for every
parameter (the quick search's supernet: 2069 kernels, 12 s on two cores, even without XLA's
optimisation passes). `init_variables` gets the same values another way: it traces `init`
abstractly, where the initialisers here only record what they would draw (their key, which
Flax derives from the root key and the parameter's path, computed on the host) and the shape;
then the values of all parameters of a kind (initialiser, shape) are drawn at once: on the
host with NumPy (`host_random`, float32 uniforms), else by one small program (`jax.vmap` over
their keys, compiled, like the whole-`init` program, without XLA's optimisation passes). The
values are the same bits as `Module.init` compiled so: the same random numbers per key and the
same unoptimised arithmetic (no contracted multiply-add).
"""

from __future__ import annotations

import contextvars
import dataclasses
import functools
import math
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax.core import meta

from prdarts_jax.models import host_random

__all__ = ["Constant", "UniformFanIn", "init_variables", "uniform_fan_in"]

_UNOPTIMIZED = {"xla_backend_optimization_level": 0}
_RECORDING: contextvars.ContextVar[jax.Array | None] = contextvars.ContextVar(
    "prdarts_recording_inits", default=None)


class _Recorded(meta.AxisMetadata):
    """What a parameter's initialiser would compute, boxed where Flax stores the variable."""

    def __init__(self, value: Any, recipe: Any, key: tuple[int, ...] | None):
        self.value, self.recipe, self.key = value, recipe, key

    def unbox(self) -> Any:
        return self.value

    def replace_boxed(self, val: Any) -> Any:
        """A value assigned during `init` is no longer what the initialiser draws: it stays
        unrecorded, so that `init_variables` compiles the whole `init`."""
        return val

    def add_axis(self, index: int, params: dict[str, Any]) -> "_Recorded":
        raise NotImplementedError("recorded initialisers are not lifted over axes")

    def remove_axis(self, index: int, params: dict[str, Any]) -> "_Recorded":
        raise NotImplementedError("recorded initialisers are not lifted over axes")


jax.tree_util.register_pytree_node(
    _Recorded, lambda r: ((r.value,), (r.recipe, r.key)),
    lambda aux, children: _Recorded(children[0], *aux))


def _record(recipe: Any, key: jax.Array | None, shape: tuple[int, ...], dtype: Any
            ) -> _Recorded | None:
    """The box to return while recording (a traced placeholder of the shape), else None."""
    zero = _RECORDING.get()
    if zero is None or (key is not None and not _raw_key(key)):
        return None     # (not recording, or a traced or typed key: the fallback compiles init)
    key_data = None if key is None else tuple(int(k) for k in np.asarray(key).ravel())
    return _Recorded(jnp.broadcast_to(zero.astype(dtype), shape), recipe, key_data)


@dataclasses.dataclass(frozen=True)
class UniformFanIn:
    """PyTorch's default conv/linear init: U(-bound, bound), bound = 1/sqrt(fan_in)."""

    bound: float

    def __call__(self, key: jax.Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> Any:
        recorded = _record(self, key, shape, dtype)
        if recorded is not None:
            return recorded
        return jax.random.uniform(key, shape, dtype, -self.bound, self.bound)

    def host_draw(self, keys: np.ndarray, shape: tuple[int, ...], dtype: Any
                  ) -> np.ndarray | None:
        """The values for each raw key of `keys` (n, 2), stacked, drawn with NumPy; None
        where NumPy would not give JAX's bits (`host_random.supported`)."""
        if not host_random.supported(shape, dtype):
            return None
        return host_random.uniform(keys, shape, -self.bound, self.bound)


@dataclasses.dataclass(frozen=True)
class Constant:
    """Every element `value` (BatchNorm statistics and affine parameters)."""

    value: float

    def __call__(self, *args: Any, dtype: Any = None) -> Any:
        """`(shape[, dtype])` for a variable, `(key, shape[, dtype])` for a parameter."""
        if args and isinstance(args[0], jax.Array):
            args = args[1:]
        shape = tuple(args[0])
        dtype = dtype if dtype is not None else (args[1] if len(args) > 1 else jnp.float32)
        recorded = _record(self, None, shape, dtype)
        if recorded is not None:
            return recorded
        return jnp.full(shape, self.value, dtype)

    def host(self, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        """The same values as a NumPy array."""
        return np.full(shape, self.value, dtype)


def _raw_key(key: Any) -> bool:
    """A concrete `PRNGKey` (uint32[2]), whose data the recording can keep."""
    return (isinstance(key, jax.Array) and not isinstance(key, jax.core.Tracer)
            and key.dtype == jnp.uint32 and key.shape == (2,))


def uniform_fan_in(fan_in: int) -> UniformFanIn:
    """PyTorch's default conv/linear init: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    return UniformFanIn(1.0 / math.sqrt(fan_in))


def _random_settings() -> tuple:
    """JAX's settings that decide what a raw key draws (part of the drawer's cache key)."""
    return jax.config.jax_default_prng_impl, bool(jax.config.jax_threefry_partitionable)


@functools.lru_cache(maxsize=16)
def _drawer(groups: tuple[tuple[UniformFanIn, tuple[int, ...], Any, int], ...],
            settings: tuple = ()) -> Callable:
    """One compiled program that draws, for each (recipe, shape, dtype, n) of `groups`, `n`
    values of the recipe from `n` stacked keys, returned as `n` arrays (slicing them apart
    outside would compile a small program per shape). `settings` (`_random_settings()`) keys
    the cache: the program bakes in the generator in force."""
    del settings
    def draw(keys):
        return [list(jax.vmap(lambda k, r=r, s=s, d=d: r(k, s, d))(k))
                for (r, s, d, _), k in zip(groups, keys)]
    keys = [jax.ShapeDtypeStruct((n, 2), jnp.uint32) for *_, n in groups]
    return jax.jit(draw).lower(keys).compile(compiler_options=_UNOPTIMIZED)


def _materialize(tree: Any) -> Any:
    """The recorded tree's values: the random leaves drawn per (recipe, shape, dtype)."""
    leaves, treedef = jax.tree.flatten(tree, is_leaf=lambda x: isinstance(x, _Recorded))
    groups: dict[tuple, list[int]] = {}
    for i, leaf in enumerate(leaves):
        if leaf.key is not None:
            groups.setdefault((leaf.recipe, leaf.value.shape, leaf.value.dtype), []).append(i)
    values: list[Any] = [None] * len(leaves)
    on_host = {i: leaf.recipe.host(leaf.value.shape, leaf.value.dtype)
               for i, leaf in enumerate(leaves) if leaf.key is None}
    compiled: dict[tuple, tuple[list[int], np.ndarray]] = {}
    for (recipe, shape, dtype), where in groups.items():
        keys = np.array([leaves[i].key for i in where], np.uint32)
        drawn = recipe.host_draw(keys, shape, dtype)   # (keyed recipes: `UniformFanIn`)
        if drawn is None:
            compiled[(recipe, shape, dtype)] = (where, keys)
        else:
            on_host.update(zip(where, drawn))
    if compiled:
        program = _drawer(tuple((*g, len(where)) for g, (where, _) in compiled.items()),
                          _random_settings())
        drawn = program([keys for _, keys in compiled.values()])
        for (where, _), group in zip(compiled.values(), drawn):
            for j, i in enumerate(where):
                values[i] = group[j]
    for i, value in zip(on_host, jax.device_put(list(on_host.values()))):  # copies: no compile
        values[i] = value
    return jax.tree.unflatten(treedef, values)


def init_variables(module: nn.Module, key: jax.Array, *args: Any) -> dict:
    """`module.init(key, *args)`'s variables, drawn per (initialiser, shape) (module docstring).
    Python scalars among `args` are static (`train`), the rest traced. Where some variable's
    initialiser is not one of this module's, or `key` is not a raw `PRNGKey`, the whole `init`
    is compiled instead (without XLA's optimisation passes: it runs once); inside a trace (a
    traced `key`) `init` is traced with it."""
    if isinstance(key, jax.core.Tracer):   # inside a trace: `init` becomes part of it
        return dict(module.init(key, *args))
    recorded = _recorded(module, key, args)
    if recorded is None:
        init = jax.jit(lambda k: module.init(k, *args))
        return dict(init.lower(key).compile(compiler_options=_UNOPTIMIZED)(key))
    return dict(_materialize(recorded))


def _recorded(module: nn.Module, key: jax.Array, args: tuple) -> Any:
    """`module.init`'s variables as recorded initialisers (shapes and keys), or None."""
    if not _raw_key(key):
        return None
    static = (bool, int, float, str, type(None))
    traced = [i for i, a in enumerate(args) if not isinstance(a, static)]

    def record(zero, values):
        full = list(args)
        for i, v in zip(traced, values):
            full[i] = v
        token = _RECORDING.set(zero)
        try:
            with jax.ensure_compile_time_eval():
                return module.init(key, *full)
        finally:
            _RECORDING.reset(token)

    try:
        shapes = jax.eval_shape(record, jax.ShapeDtypeStruct((), jnp.float32),
                                [args[i] for i in traced])
    except Exception:  # noqa: BLE001 - a module recording cannot serve (lifted transforms, an
        return None    # initialiser that computes with another's value): compile its init
    leaves = jax.tree.leaves(shapes, is_leaf=lambda x: isinstance(x, _Recorded))
    return shapes if all(isinstance(leaf, _Recorded) for leaf in leaves) else None
