"""A state packed per dtype comes back bit for bit, shaped and placed like its target; the
digest tells apart states whose leaves differ in path, shape or dtype."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from prdarts_jax.runtime import packed_state


def _state():
    params = {"conv": {"w": jnp.arange(24.0).reshape(2, 3, 4)}, "bias": jnp.float32(0.5)}
    return {"params": params, "opt": optax.adam(1e-3).init(params),
            "steps": jnp.int32(7), "key": jnp.asarray([1, 2], jnp.uint32),
            "empty": jnp.zeros((0, 3))}


def _abstract(tree):
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding),
                        tree)


def test_pack_then_unpack_gives_the_same_bits_dtypes_and_placement():
    state = _state()
    packed = packed_state.pack(state)
    assert sorted(packed) == ["float32", "int32", "uint32"]
    assert all(a.ndim == 1 and a.flags.owndata for a in packed.values())
    abstract = packed_state.abstract_packed(_abstract(state))
    assert {k: (v.shape, v.dtype) for k, v in abstract.items()} == {
        k: (a.shape, a.dtype) for k, a in packed.items()}
    back = packed_state.unpack(packed, _abstract(state))
    chex.assert_trees_all_equal(back, state)
    chex.assert_trees_all_equal_dtypes(back, state)
    assert all(isinstance(x, jax.Array) and x.sharding == y.sharding
               for x, y in zip(jax.tree.leaves(back), jax.tree.leaves(state)))


def test_the_packed_copies_do_not_alias_the_device_buffers():
    state = {"w": jnp.ones(5)}
    packed = packed_state.pack(state)
    jax.jit(lambda s: jax.tree.map(lambda x: x * 3, s), donate_argnums=0)(state)
    assert packed["float32"].tolist() == [1.0] * 5


def test_the_digest_names_paths_shapes_and_dtypes():
    state = _state()
    d = packed_state.digest(state)
    assert d == packed_state.digest(_abstract(state))
    renamed = {**state, "steps2": state["steps"]}
    del renamed["steps"]
    reshaped = {**state, "key": jnp.asarray([[1, 2]], jnp.uint32)}
    retyped = {**state, "steps": jnp.float32(7)}
    assert len({d, *(packed_state.digest(s) for s in (renamed, reshaped, retyped))}) == 4


def test_a_target_smaller_than_the_packed_state_is_refused():
    packed = packed_state.pack({"a": jnp.ones(3), "b": jnp.ones(2)})
    with pytest.raises(ValueError, match="more numbers than its target"):
        packed_state.unpack(packed, {"a": jax.ShapeDtypeStruct((3,), np.float32)})
