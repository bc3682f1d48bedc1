"""Checkpoints: nothing on disk before the first save, and a checkpoint of another format
version is not taken (CheckpointError when it is the only one)."""

import jax.numpy as jnp
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
