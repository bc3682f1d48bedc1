"""Checkpoints: nothing on disk before the first save; a checkpoint of another format version,
or of another structure, is not taken (CheckpointError when it is the only one); a single
process saves its state packed per dtype; format 1 still restores."""

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from prdarts_jax.errors import CheckpointError
from prdarts_jax.runtime import checkpoints
from prdarts_jax.runtime.checkpoints import Checkpointer


def _target(_meta):
    return {"w": jnp.zeros(3)}


def test_nothing_is_created_until_the_first_save(tmp_path):
    workdir = tmp_path / "run"
    ckpt = Checkpointer(str(workdir))
    assert ckpt.restore_latest(_target) is None
    ckpt.close()
    assert not workdir.exists()
    ckpt = Checkpointer(str(workdir))
    ckpt.save(7, {"w": jnp.arange(3.0)}, {"n": 1})
    state, meta = ckpt.restore_latest(_target)
    ckpt.close()
    assert meta["n"] == 1 and state["w"].tolist() == [0.0, 1.0, 2.0]


def test_a_checkpoint_of_another_format_version_is_refused(tmp_path, monkeypatch):
    ckpt = Checkpointer(str(tmp_path))
    ckpt.save(1, {"w": jnp.ones(3)}, {})
    ckpt.close()
    monkeypatch.setattr(checkpoints, "FORMAT_VERSION", checkpoints.FORMAT_VERSION + 1)
    ckpt = Checkpointer(str(tmp_path))
    with pytest.raises(CheckpointError, match="none of the 1 checkpoints .* is readable"):
        ckpt.restore_latest(_target)
    ckpt.close()


def test_a_single_process_saves_its_state_packed_and_the_buffers_may_be_donated(tmp_path):
    ckpt = Checkpointer(str(tmp_path))
    state = {"w": jnp.arange(3.0), "n": jnp.int32(4)}
    ckpt.save(1, state, {"n": 1})
    state = jax.jit(lambda s: jax.tree.map(lambda x: x + 1, s), donate_argnums=0)(state)
    assert ckpt.steps() == [1]
    meta = ckpt.manager.restore(1, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
    assert meta["format_version"] == checkpoints.FORMAT_VERSION and meta["packed"]
    stored = ckpt.manager.restore(1, args=ocp.args.Composite(state=ocp.args.StandardRestore(
        {"float32": jax.ShapeDtypeStruct((3,), jnp.float32),
         "int32": jax.ShapeDtypeStruct((1,), jnp.int32)})))["state"]
    assert stored["float32"].tolist() == [0.0, 1.0, 2.0] and stored["int32"].tolist() == [4]
    restored, meta = ckpt.restore_latest(lambda _: {"w": jnp.zeros(3), "n": jnp.int32(0)})
    ckpt.close()
    assert meta["n"] == 1 and restored["w"].tolist() == [0.0, 1.0, 2.0]
    assert restored["n"].dtype == jnp.int32 and int(restored["n"]) == 4


def test_a_packed_checkpoint_is_not_restored_into_another_structure(tmp_path):
    ckpt = Checkpointer(str(tmp_path))
    ckpt.save(1, {"w": jnp.ones(3)}, {})
    ckpt.close()
    ckpt = Checkpointer(str(tmp_path))
    with pytest.raises(CheckpointError, match="none of the 1 checkpoints .* is readable"):
        ckpt.restore_latest(lambda _: {"v": jnp.zeros(3)})
    ckpt.close()


def test_a_checkpoint_of_format_1_leaf_by_leaf_still_restores(tmp_path):
    """Format 1 (before packing), as several processes still write it."""
    manager = ocp.CheckpointManager(str(tmp_path / checkpoints.CHECKPOINT_DIR),
                                    item_names=("state", "meta"))
    manager.save(3, args=ocp.args.Composite(
        state=ocp.args.StandardSave({"w": np.arange(3.0, dtype=np.float32)}),
        meta=ocp.args.JsonSave({"format_version": 1, "n": 3})))
    manager.wait_until_finished()
    manager.close()
    ckpt = Checkpointer(str(tmp_path))
    state, meta = ckpt.restore_latest(_target)
    ckpt.close()
    assert meta["n"] == 3 and state["w"].tolist() == [0.0, 1.0, 2.0]
