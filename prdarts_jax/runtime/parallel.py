"""Data parallelism: one mesh over the devices, batches split on its `data` axis.

Parameters, α, batch statistics, optimizer states and the (uint8) dataset are replicated; the
index vector of each batch is sharded, so the gather, augmentation, forward and backward of a
batch run split across devices while the jitted step programs stay the ones of one device
(no pmap): XLA inserts the all-reduces, BatchNorm statistics are those of the whole (global)
batch, and every device holds the same α by construction. Works across hosts too: arrays are
built from host values that every process holds alike.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"


@dataclasses.dataclass(frozen=True)
class Placement:
    """Where the arrays of a run live: a 1-D mesh over `devices` with the axis `data`."""

    mesh: Mesh

    @property
    def size(self) -> int:
        return int(self.mesh.size)

    @property
    def replicated(self) -> NamedSharding:
        return NamedSharding(self.mesh, PartitionSpec())

    @property
    def batch_sharding(self) -> NamedSharding:
        return NamedSharding(self.mesh, PartitionSpec(DATA_AXIS))

    def replicate(self, tree: Any) -> Any:
        """Every leaf (host or device array) as an array replicated over the mesh."""
        return jax.tree.map(lambda x: _put(x, self.replicated), tree)

    def shard_batch(self, x: np.ndarray) -> jax.Array:
        """A host array split along its first axis over the mesh (its length divides by size)."""
        return _put(np.asarray(x), self.batch_sharding)

    def abstract(self, shapes: Any) -> Any:
        """`ShapeDtypeStruct`s of `shapes` with the replicated sharding: a restore target."""
        return jax.tree.map(
            lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=self.replicated), shapes)


def data_placement(num_devices: int = 0) -> Placement:
    """The first `num_devices` devices (0: all of them, across every process) in one mesh."""
    devices = jax.devices()
    n = len(devices) if num_devices == 0 else num_devices
    if not 1 <= n <= len(devices):
        raise ValueError(f"num_devices={num_devices} but {len(devices)} devices are visible; "
                         f"use 0 (all) or a number in 1..{len(devices)}")
    return Placement(Mesh(np.asarray(devices[:n]), (DATA_AXIS,),
                          axis_types=(jax.sharding.AxisType.Auto,)))


def round_up(batch: int, placement: Placement) -> int:
    """The smallest multiple of the device count >= `batch` (evaluation pads and masks)."""
    return -(-batch // placement.size) * placement.size


def main_process_first(fn: Callable[[], Any], name: str) -> Any:
    """`fn()` on the main process, then on the others once it is done (a barrier named
    `name`): for work on shared files that one process should do first, such as preparing a
    dataset into a data_dir that every process reads."""
    if jax.process_count() == 1:
        return fn()
    from jax.experimental import multihost_utils
    result = fn() if is_main_process() else None
    multihost_utils.sync_global_devices(name)
    return result if is_main_process() else fn()


def is_main_process() -> bool:
    """Process 0 writes metrics, reports and genotype files; every process saves checkpoints."""
    return jax.process_index() == 0


def _put(x: Any, sharding: NamedSharding) -> jax.Array:
    if isinstance(x, jax.Array) and x.sharding == sharding:
        return x
    if jax.process_count() == 1:
        return jax.device_put(x, sharding)
    host = np.asarray(x)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])
