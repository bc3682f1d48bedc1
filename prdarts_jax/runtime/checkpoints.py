"""Orbax checkpoints of a whole run's state, and finding the latest readable one.

A checkpoint has two items: `state` (a pytree of arrays) and `meta` (JSON). In a search the state
is params, batch stats, α and both optimizer states, and meta holds the position, pools and
histories, lineage, every RNG and iterator state, the metrics.jsonl offset and elapsed time;
retraining stores its own (see train/loop.py). Checkpoints are numbered by the position they resume
at; numbers that are multiples of `keep_every` (if set; in a search: the start of a cycle,
after pruning and morphing) are all kept, other ones only the newest few.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from typing import Any, Callable

import jax
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as policies

from prdarts_jax.errors import CheckpointError
from prdarts_jax.runtime import packed_state
from prdarts_jax.runtime.interrupts import NO_FAULTS, FaultHook

log = logging.getLogger("prdarts_jax")

CHECKPOINT_DIR = "checkpoints"
STEP_STRIDE = 100_000
CYCLE_STRIDE = 1000 * STEP_STRIDE
FORMAT_VERSION = 2
"""2: in a single process the state is packed per dtype (`packed_state`); 1: a leaf per array,
as several processes still write (meta without "packed"), which restores as before."""
OLDER_VERSIONS = (1,)


def position_id(cycle: int, epoch: int, step: int) -> int:
    return (cycle * 1000 + epoch) * STEP_STRIDE + step


class Checkpointer:
    """Saves and restores checkpoints under `<workdir>/checkpoints`.

    Saves are synchronous: a save returns once the checkpoint is committed, so a run killed
    after it resumes there. In a single process the state is saved as host copies packed per
    dtype (`packed_state`), so the step programs may donate its buffers at once.
    """

    def __init__(self, workdir: str, keep: int = 3, keep_every: int = CYCLE_STRIDE, *,
                 faults: FaultHook = NO_FAULTS):
        self.faults = faults
        kept = [policies.LatestN(keep)] + ([policies.EveryNSteps(keep_every)]
                                           if keep_every else [])
        self._options = ocp.CheckpointManagerOptions(
            create=True, enable_async_checkpointing=False,
            preservation_policy=policies.AnyPreservationPolicy(kept),
            cleanup_tmp_directories=True)
        self.directory = os.path.join(os.path.abspath(workdir), CHECKPOINT_DIR)
        self._manager: ocp.CheckpointManager | None = None

    @property
    def manager(self) -> ocp.CheckpointManager:
        """Orbax's manager, made on first use: until a save (or a restore from an existing
        folder) nothing is created on disk, so a run that fails early leaves no trace."""
        if self._manager is None:
            self._manager = ocp.CheckpointManager(self.directory, options=self._options,
                                                  item_names=("state", "meta"))
        return self._manager

    def save(self, position: int, state: Any, meta: dict) -> None:
        """Writes checkpoint `position` and returns once it is committed. In a single process
        the state is saved as host copies packed into one flat array per dtype
        (`packed_state`): orbax writes each leaf as an array of its own, which cost 1.2 s for
        the quick search's ~1900 leaves, against 0.02 s for its two packed arrays. Several
        processes save leaf by leaf from the devices (each writes its own shards)."""
        self.faults.before_save(position)
        meta = {**meta, "format_version": FORMAT_VERSION}
        if jax.process_count() == 1:
            meta["packed"] = packed_state.digest(state)
            state = packed_state.pack(state)
        self.manager.save(position, args=ocp.args.Composite(
            state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)), force=True)
        self.manager.wait_until_finished()

    def steps(self) -> list[int]:
        if self._manager is None and not os.path.isdir(self.directory):
            return []
        return sorted(self.manager.all_steps())

    def restore_latest(self, target_for: Callable[[dict], Any]) -> tuple[Any, dict] | None:
        """(state, meta) of the newest readable checkpoint; None if there are none.

        `target_for(meta)` gives the abstract state to restore into (it depends on the pools).
        Unreadable checkpoints are skipped with a warning; if none is readable, CheckpointError.
        """
        steps = self.steps()
        skipped = []
        for step in reversed(steps):
            try:
                meta = self.manager.restore(step, args=ocp.args.Composite(
                    meta=ocp.args.JsonRestore()))["meta"]
                version = meta.get("format_version")
                if version != FORMAT_VERSION and version not in OLDER_VERSIONS:
                    raise ValueError(f"format version {version}")
                state = self._restore_state(step, target_for(meta), meta.get("packed"))
                jax.block_until_ready(state)
                self._set_aside(skipped)
                return state, meta
            except Exception as err:  # noqa: BLE001 - any damage means: try the previous one
                skipped.append(step)
                log.warning("skipping unreadable checkpoint %s/%d: %s", self.directory, step,
                            str(err).splitlines()[0][:200] if str(err) else type(err).__name__)
        if steps:
            raise CheckpointError(
                f"none of the {len(steps)} checkpoints in {self.directory} is readable; move "
                "that folder away to start the run afresh (nothing was changed)")
        return None

    def _restore_state(self, step: int, target: Any, packed: str | None) -> Any:
        """Checkpoint `step`'s state into `target`, from its packed arrays if `packed` (the
        digest of the saved structure, which `target` must match) else leaf by leaf."""
        if packed is None:
            return self.manager.restore(step, args=ocp.args.Composite(
                state=ocp.args.StandardRestore(target)))["state"]
        if packed_state.digest(target) != packed:
            raise ValueError("the state it holds is not shaped as this run's state")
        arrays = self.manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(packed_state.abstract_packed(target))))["state"]
        return packed_state.unpack(arrays, target)

    def _set_aside(self, steps: list[int]) -> None:
        """Moves unreadable checkpoints newer than the restored one to `checkpoints_unreadable/`
        (kept for inspection), so that the resumed run can save those positions again."""
        if not steps:
            return
        aside = self.directory + "_unreadable"
        os.makedirs(aside, exist_ok=True)
        for step in steps:
            src = os.path.join(self.directory, str(step))
            if os.path.exists(src):
                shutil.move(src, os.path.join(aside, f"{step}-{int(time.time())}"))
        self.manager.reload()

    def close(self) -> None:
        if self._manager is not None:
            self._manager.wait_until_finished()
            self._manager.close()
