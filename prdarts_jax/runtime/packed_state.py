"""A run's state as one flat array per dtype: how a single process writes its checkpoints.

Orbax writes each leaf of a pytree as an array of its own, at about 0.6 ms a leaf: a search's
state (the supernet's weights, batch statistics, α and both optimizer states) has thousands of
small leaves, so a save cost 1.2 s of CPU (the quick search's ~1900 leaves) and a restore 1.6 s.
Concatenated per dtype it is two or three arrays: 0.02 s to save and 0.01 s to restore.

The leaves are packed in the pytree's flattening order; the restore target (the abstract state
the run's meta describes) gives the shapes back. `digest` names that structure (every leaf's
path, shape and dtype), and the checkpoint records it, so a target that does not describe the
saved state is refused instead of being filled with the wrong numbers.
"""

from __future__ import annotations

import hashlib
from typing import Any

import jax
import numpy as np

__all__ = ["abstract_packed", "digest", "pack", "unpack"]


def _leaves(tree: Any) -> list[tuple[str, tuple[int, ...], str]]:
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    return [(jax.tree_util.keystr(path), tuple(leaf.shape), np.dtype(leaf.dtype).name)
            for path, leaf in flat]


def digest(tree: Any) -> str:
    """A name for the structure of `tree` (arrays or ShapeDtypeStructs): every leaf's path,
    shape and dtype, in flattening order."""
    h = hashlib.sha256()
    for path, shape, dtype in _leaves(tree):
        h.update(f"{path}:{shape}:{dtype};".encode())
    return h.hexdigest()


def pack(state: Any) -> dict[str, np.ndarray]:
    """{dtype name: the leaves of that dtype, raveled and concatenated} (host copies, owned)."""
    groups: dict[str, list[np.ndarray]] = {}
    for leaf in jax.device_get(jax.tree.leaves(state)):
        groups.setdefault(np.dtype(leaf.dtype).name, []).append(np.ravel(leaf))
    return {name: np.concatenate(parts) for name, parts in groups.items()}


def abstract_packed(target: Any) -> dict[str, jax.ShapeDtypeStruct]:
    """The shapes and dtypes `pack` gives for a state shaped like `target`."""
    sizes: dict[str, int] = {}
    for _, shape, dtype in _leaves(target):
        sizes[dtype] = sizes.get(dtype, 0) + int(np.prod(shape, dtype=np.int64))
    return {name: jax.ShapeDtypeStruct((n,), np.dtype(name)) for name, n in sizes.items()}


def unpack(packed: dict[str, Any], target: Any) -> Any:
    """The state `pack` packed, shaped like `target` and placed as its leaves' shardings say
    (the default device where a leaf has none)."""
    leaves, treedef = jax.tree.flatten(target)
    arrays = {name: np.asarray(a) for name, a in packed.items()}
    offsets = dict.fromkeys(arrays, 0)
    values = []
    for leaf in leaves:
        name, n = np.dtype(leaf.dtype).name, int(np.prod(leaf.shape, dtype=np.int64))
        start = offsets[name]
        values.append(arrays[name][start:start + n].reshape(leaf.shape))
        offsets[name] = start + n
    if any(offsets[name] != a.size for name, a in arrays.items()):
        raise ValueError("the packed state holds more numbers than its target")
    shardings = [getattr(leaf, "sharding", None) for leaf in leaves]
    if all(s is not None for s in shardings):   # one call for all leaves
        return jax.tree.unflatten(treedef, jax.device_put(values, shardings))
    return jax.tree.unflatten(treedef, [jax.device_put(v, s) for v, s in zip(values, shardings)])
