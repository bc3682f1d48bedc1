"""What stays fixed through one search process: the config and what follows from it, the data
on the devices, the checkpointer, the metrics writer, the stop flag and the fault hook."""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any, Callable, Mapping

import jax
import ml_collections
import numpy as np

from prdarts_jax.data import DataSpec, load_split, split_halves
from prdarts_jax.runtime import compile_timer, parallel, tensorboard
from prdarts_jax.runtime.checkpoints import Checkpointer
from prdarts_jax.runtime.interrupts import FaultHook, StopFlag
from prdarts_jax.runtime.metrics import MetricsWriter
from prdarts_jax.runtime.tensorboard import TensorBoardWriter
from prdarts_jax.search import bilevel

METRICS_FILE = "metrics.jsonl"


@dataclasses.dataclass(frozen=True)
class SearchContext:
    """The fixed inputs of a search's loop; `clock` is when this process started it and
    `compile_clock` the compile seconds this process had spent by then."""

    config: ml_collections.ConfigDict
    workdir: str
    space: Any
    info: Any
    h: bilevel.Hyper
    placement: parallel.Placement
    stop: StopFlag
    faults: FaultHook
    ckpt: Checkpointer
    metrics: MetricsWriter
    images: jax.Array
    labels: jax.Array
    data_spec: DataSpec
    w_idx: np.ndarray
    a_idx: np.ndarray
    eval_idx: np.ndarray
    key: jax.Array
    clock: float
    compile_clock: float

    @property
    def metrics_path(self) -> str:
        return os.path.join(self.workdir, METRICS_FILE)

    @property
    def n_cycles(self) -> int:
        return len(self.config.schedule.epochs)


def search_context(config: ml_collections.ConfigDict, workdir: str, *, space: Any, info: Any,
                   h: bilevel.Hyper, placement: parallel.Placement, stop: StopFlag,
                   faults: FaultHook, ckpt: Checkpointer) -> SearchContext:
    """Loads the training split onto the devices and splits it into the weight and α halves
    (the α half, up to `eval_max_samples`, is also the validation set)."""
    images_np, labels_np = parallel.main_process_first(
        lambda: load_split(config.dataset, "train", config.data_dir or None), "prdarts-data")
    w_idx, a_idx = split_halves(len(images_np), config.train_portion)
    images, labels = placement.replicate((images_np, labels_np.astype(np.int32)))
    return SearchContext(
        config=config, workdir=workdir, space=space, info=info, h=h, placement=placement, stop=stop, faults=faults, ckpt=ckpt,
        metrics=MetricsWriter(os.path.join(workdir, METRICS_FILE),
                              enabled=parallel.is_main_process(),
                              mirror=TensorBoardWriter(os.path.join(workdir, tensorboard.LOGDIR),
                                                       _tensorboard_step(config.schedule))),
        images=images, labels=labels,
        data_spec=DataSpec(tuple(info.mean), tuple(info.std), info.pad),
        w_idx=w_idx, a_idx=a_idx,
        eval_idx=a_idx[:config.eval_max_samples] if config.eval_max_samples else a_idx,
        key=jax.random.PRNGKey(config.seed), clock=time.time(),
        compile_clock=compile_timer.total_seconds())


def _tensorboard_step(schedule: ml_collections.ConfigDict) -> Callable[[Mapping], int | None]:
    """TensorBoard's step of a metrics record: the epoch counted over all cycles, or the
    cycle of a per-cycle record."""
    starts = [sum(schedule.epochs[:c]) for c in range(len(schedule.epochs))]

    def step_of(record: Mapping) -> int | None:
        if record.get("type") == "epoch":
            return starts[record["cycle"] - 1] + record["epoch"]
        return record.get("cycle")
    return step_of
