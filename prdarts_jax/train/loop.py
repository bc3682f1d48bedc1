"""Retraining a genotype from scratch and evaluating it on the test set (SPEC §6).

Batches are split over the devices of `config.num_devices` (see runtime/parallel.py). The run
directory holds `config.json`, `metrics.jsonl`, `results.json` and orbax checkpoints (one per
epoch, and one where SIGTERM/SIGINT stopped the run); running again with the same workdir
resumes exactly where the last checkpoint was, mid-epoch included.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import statistics
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from prdarts_jax.data import EpochIterator, dataset_info, load_split
from prdarts_jax.errors import ConfigError, NonFiniteLossError, TrainingInterrupted
from prdarts_jax.loops.compile import announced, first_use
from prdarts_jax.loops.epoch import run_epoch
from prdarts_jax.loops.progress import duration
from prdarts_jax.models.cost import Cost, network_cost
from prdarts_jax.models.network import Network, count_params, param_count
from prdarts_jax.optim import cosine_lr
from prdarts_jax.runtime import compile_timer, interrupts, parallel, tensorboard, workdirs
from prdarts_jax.runtime.checkpoints import Checkpointer
from prdarts_jax.runtime.config_checks import check_devices
from prdarts_jax.runtime.interrupts import NO_FAULTS, FaultHook
from prdarts_jax.runtime.metrics import MetricsWriter, read_metrics
from prdarts_jax.runtime.tensorboard import TensorBoardWriter
from prdarts_jax.space.genotypes import Genotype, load_genotype, save_genotype
from prdarts_jax.train.config import genotype_of, validate
from prdarts_jax.train.evaluate import GENOTYPE_FILE, checkpointer, evaluate
from prdarts_jax.train.programs import (
    Programs,
    State,
    StepSettings,
    abstract_state,
    build_network,
    data_spec,
    init_state,
    programs_for,
    step_settings,
)

log = logging.getLogger("prdarts_jax")

EPOCH_STRIDE = 1_000_000
"""Checkpoint numbers: epoch * EPOCH_STRIDE + step (the end of epoch e is number (e+1)·stride)."""


@dataclasses.dataclass
class EpochProgress:
    """Where an epoch stands: its length, the next step, and the running sums of the loss and
    accuracy (float32 on the device, saved exactly in a mid-epoch checkpoint)."""

    steps: int
    step: int = 0
    loss_sum: Any = 0.0
    acc_sum: Any = 0.0

    def to_json(self) -> dict:
        return {"steps": self.steps, "step": self.step, "loss_sum": float(self.loss_sum),
                "acc_sum": float(self.acc_sum)}

    @classmethod
    def from_json(cls, d: dict) -> "EpochProgress":
        return cls(d["steps"], d["step"], np.float32(d["loss_sum"]), np.float32(d["acc_sum"]))


@dataclasses.dataclass
class TrainRun:
    """What a retraining checkpoint holds: the state, the data iterator, the key, the epoch to
    run next and, mid-epoch, how far it got."""

    state: State
    it: EpochIterator
    key: jax.Array
    epoch: int
    progress: EpochProgress | None = None

    def save(self, ckpt: Checkpointer) -> None:
        step = self.progress.step if self.progress else 0
        ckpt.save(self.epoch * EPOCH_STRIDE + step, self.state, {
            "epoch": self.epoch, "iterator": self.it.state(),
            "key": np.asarray(jax.random.key_data(self.key)).tolist(),
            "progress": self.progress and self.progress.to_json()})


@dataclasses.dataclass(frozen=True)
class _Context:
    """The fixed inputs of one retraining process."""

    config: ml_collections.ConfigDict
    programs: Programs
    train: tuple[jax.Array, jax.Array]
    test: tuple[jax.Array, jax.Array]
    placement: parallel.Placement
    stop: interrupts.StopFlag
    faults: FaultHook
    ckpt: Checkpointer
    metrics: MetricsWriter


def _check_finite(loss_sum: jax.Array, epoch: int, step: int) -> None:
    value = float(loss_sum)
    if not np.isfinite(value):
        raise NonFiniteLossError(f"non-finite loss ({value}) in epoch {epoch} by step {step}; "
                                 "lower config.lr or check the data")


def _run_epoch(ctx: _Context, run: TrainRun, *, lr: float, drop_prob: float) -> dict | None:
    """Steps from `run.progress.step` to the end of the epoch; returns the epoch's train
    record, or None if a signal stopped it (then `run.progress` says where)."""
    images, labels = ctx.train
    progress, epoch, log_every = run.progress, run.epoch, ctx.config.log_every
    lr_a, drop_a = jnp.float32(lr), jnp.float32(drop_prob)
    progress.loss_sum, progress.acc_sum = (jnp.float32(progress.loss_sum),
                                           jnp.float32(progress.acc_sum))
    key = jax.random.fold_in(run.key, 1 + epoch)

    def step(i: int) -> tuple[bool, jax.Array, int]:
        idx = ctx.placement.shard_batch(run.it.next_batch(ctx.config.batch_size))
        run.state, m = ctx.programs.train_step(run.state, images, labels, idx,
                                               jax.random.fold_in(key, i), lr_a, drop_a)
        progress.loss_sum, progress.acc_sum = (progress.loss_sum + m["loss"],
                                               progress.acc_sum + m["acc"])
        progress.step = i + 1
        ctx.faults.after_step(run.state["params"])
        if log_every and (i + 1) % log_every == 0:
            _check_finite(progress.loss_sum, epoch, i)
        return progress.step >= progress.steps, m["loss"], ctx.config.batch_size

    def announced_step(i: int) -> tuple[bool, jax.Array, int]:
        if not first_use(ctx.programs.train_step):
            return step(i)
        with announced(f"the train step (batch {ctx.config.batch_size})"):
            return step(i)

    _, done = run_epoch(announced_step, start=progress.step, total=progress.steps,
                        position=(epoch,), label=f"epoch {epoch}", stop=ctx.stop,
                        faults=ctx.faults, log_every=log_every)
    if not done:
        return None
    steps = progress.steps
    _check_finite(progress.loss_sum, epoch, steps - 1)
    return {"train_loss": float(progress.loss_sum) / steps,
            "train_acc": float(progress.acc_sum) / steps, "steps": steps}


def _evaluated_epoch(epoch: int, config: ml_collections.ConfigDict) -> bool:
    return (epoch + 1) % config.eval_every == 0 or epoch >= config.epochs - config.final_epochs


def _train_epoch(ctx: _Context, run: TrainRun) -> None:
    """Epoch `run.epoch` (from where it stands), its test evaluation when due, its record and
    the checkpoint at its end; raises TrainingInterrupted after a signal (saved)."""
    config, epoch, t0, c0 = ctx.config, run.epoch, time.time(), compile_timer.snapshot()
    lr = cosine_lr(epoch, config.epochs, config.lr, config.lr_min)
    drop_prob = config.drop_path * epoch / config.epochs
    if run.progress is None:
        steps = run.it.steps_remaining(config.batch_size)
        run.progress = EpochProgress(min(steps, config.max_steps_per_epoch or steps))
    record = _run_epoch(ctx, run, lr=lr, drop_prob=drop_prob)
    if record is None:
        run.save(ctx.ckpt)
        raise TrainingInterrupted(
            f"stopped by signal {ctx.stop.signal} in epoch {epoch} at step {run.progress.step}; "
            "the state is saved: run the same command to resume")
    record = {"epoch": epoch, "lr": lr, "drop_path": drop_prob, **record,
              "num_devices": ctx.placement.size}
    if _evaluated_epoch(epoch, config):
        with announced("the evaluation program", first_use(ctx.programs.eval_batch)):
            record["test_loss"], record["test_acc"] = evaluate(
                ctx.programs, run.state, *ctx.test, config.eval_batch_size, ctx.placement)
    record["seconds"] = time.time() - t0
    record["compile_seconds"] = compile_timer.total_seconds() - c0.seconds
    record["compile"] = compile_timer.since(c0)
    ctx.metrics.write(record)
    run.epoch, run.progress = epoch + 1, None
    run.save(ctx.ckpt)
    log.info("epoch %d: lr %.4f drop %.3f train loss %.4f acc %.4f%s | %.1f s | ETA %s",
             epoch, lr, drop_prob, record["train_loss"], record["train_acc"],
             f" | test loss {record['test_loss']:.4f} acc {record['test_acc']:.4f}"
             if "test_acc" in record else "", record["seconds"], duration(_eta(ctx, epoch)))
    if ctx.stop.signal is not None and epoch + 1 < config.epochs:
        raise TrainingInterrupted(
            f"stopped by signal {ctx.stop.signal} after epoch {epoch}; the state is saved: "
            "run the same command to resume")


def _eta(ctx: _Context, epoch: int) -> float | None:
    """Seconds left after `epoch`: the remaining epochs at the median steady time (compile
    taken out) of the last three in metrics.jsonl, evaluations included."""
    if not ctx.metrics.enabled:
        return None
    records = [r for r in read_metrics(ctx.metrics.path) if "seconds" in r][-3:]
    steady = [r["seconds"] - r.get("compile_seconds", 0.0) for r in records]
    return statistics.median(steady) * (ctx.config.epochs - epoch - 1) if steady else None


def _keep_metrics_before(path: str, epoch: int) -> None:
    """Drops records of epochs >= `epoch` (written after the checkpoint we resume from)."""
    if not os.path.exists(path):
        return
    records = [r for r in read_metrics(path) if r.get("epoch", -1) < epoch]
    with open(path, "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in records)


STRUCTURE_KEYS = ("dataset", "channels", "layers", "aux_weight")
"""Config keys a resume cannot change: the checkpoint holds another network's weights."""


def _check_resume(config: ml_collections.ConfigDict, genotype: Genotype, workdir: str) -> None:
    """A workdir that is a search or holds unrelated files, or whose checkpoints belong to
    another network (genotype, dataset, size), stops here with one line; writes nothing."""
    workdirs.expect(workdir, workdirs.TRAIN)
    path = os.path.join(workdir, "config.json")
    if not (os.path.exists(path) and os.path.isdir(os.path.join(workdir, "checkpoints"))):
        return
    with open(path) as f:
        old = json.load(f)
    changed = [k for k in STRUCTURE_KEYS if k in old and old[k] != config[k]]
    saved = os.path.join(workdir, GENOTYPE_FILE)
    if os.path.exists(saved) and load_genotype(saved) != genotype:
        changed.insert(0, "genotype")
    if changed:
        raise ConfigError(
            f"{workdir} holds a retraining of another network ({', '.join(changed)} differ "
            "from its config.json); use a new --workdir for this one")


def _write_config(config: ml_collections.ConfigDict, workdir: str) -> None:
    path = os.path.join(workdir, "config.json")
    new = json.loads(config.to_json_best_effort())
    if os.path.exists(path):
        with open(path) as f:
            old = json.load(f)
        changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        if changed:
            log.warning("config differs from the one in %s in %s; continuing with the new one",
                        path, ", ".join(changed))
    with open(path, "w") as f:
        json.dump(new, f, indent=1)


def summarize(metrics_path: str, config: ml_collections.ConfigDict, params: int,
              genotype: Genotype) -> dict:
    """results.json: the final test error and the mean over the last `final_epochs` epochs;
    the network's parameters and MAdds (`models.cost`)."""
    evals = {r["epoch"]: r for r in read_metrics(metrics_path) if "test_acc" in r}
    last = [evals[e] for e in range(config.epochs - config.final_epochs, config.epochs)
            if e in evals]
    final = evals.get(config.epochs - 1)
    info = dataset_info(config.dataset)
    return {
        "genotype": str(config.genotype),
        "genotype_cells": genotype.to_json(),
        "dataset": config.dataset,
        "params": params,
        "madds": network_cost(genotype, info.num_classes, config.channels, config.layers,
                              info.image_shape).madds,
        "epochs": config.epochs,
        "final_test_loss": final and final["test_loss"],
        "final_test_acc": final and final["test_acc"],
        "final_test_error": final and 1 - final["test_acc"],
        "mean_test_error_last_epochs": (float(np.mean([1 - r["test_acc"] for r in last]))
                                        if last else None),
        "last_epochs_evaluated": [r["epoch"] for r in last],
    }


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, *,
                       faults: FaultHook = NO_FAULTS) -> dict:
    """Trains `config.genotype` from scratch (or resumes), writes everything into `workdir`,
    and returns the results (also in results.json). `faults` is the resume tests' hook."""
    validate(config)
    placement = check_devices(config, ("batch_size",))
    with interrupts.StopFlag() as stop:
        return _train(config, workdir, placement=placement, stop=stop, faults=faults)


def _start_or_resume(config: ml_collections.ConfigDict, net: Network, settings: StepSettings,
                     placement: parallel.Placement, ckpt: Checkpointer, n_train: int
                     ) -> TrainRun:
    """The latest checkpoint's run, or a fresh one at epoch 0."""
    image_shape = dataset_info(config.dataset).image_shape
    key = jax.random.PRNGKey(config.seed)
    it = EpochIterator(np.arange(n_train), seed=config.seed)
    restored = ckpt.restore_latest(
        lambda meta: abstract_state(net, image_shape, settings, placement))
    if restored is None:
        return TrainRun(init_state(net, jax.random.fold_in(key, 0), image_shape, settings,
                                   placement), it, key, epoch=0)
    state, meta = restored
    it.restore(meta["iterator"])
    progress = EpochProgress.from_json(meta["progress"]) if meta.get("progress") else None
    log.info("resumed at epoch %d, step %d", meta["epoch"], progress.step if progress else 0)
    return TrainRun(state, it, jnp.asarray(meta["key"], jnp.uint32), meta["epoch"], progress)


def _train(config: ml_collections.ConfigDict, workdir: str, *, placement: parallel.Placement,
           stop: interrupts.StopFlag, faults: FaultHook) -> dict:
    genotype = genotype_of(config)
    _check_resume(config, genotype, workdir)
    net = build_network(config, genotype)
    settings = step_settings(config)
    main = parallel.is_main_process()
    data_dir = config.data_dir or None
    train_np = parallel.main_process_first(
        lambda: load_split(config.dataset, "train", data_dir), "prdarts-data")
    test_np = load_split(config.dataset, "test", data_dir)
    train = placement.replicate((train_np[0], train_np[1].astype(np.int32)))
    test = placement.replicate((test_np[0], test_np[1].astype(np.int32)))
    programs = programs_for(net, data_spec(config), settings)
    metrics_path = os.path.join(workdir, "metrics.jsonl")
    ckpt, ctx = checkpointer(workdir, config.keep_checkpoints, faults=faults), None
    try:
        run = _start_or_resume(config, net, settings, placement, ckpt, len(train_np[1]))
        if main:
            os.makedirs(workdir, exist_ok=True)
            _write_config(config, workdir)
            save_genotype(genotype, os.path.join(workdir, GENOTYPE_FILE))
        start, n_params = run.epoch, count_params(run.state["params"])
        log.info("%s on %s: %d params (without the auxiliary head)", config.genotype,
                 config.dataset, n_params)
        if main:
            _keep_metrics_before(metrics_path, start)
        ctx = _Context(config, programs, train, test, placement, stop, faults, ckpt,
                       MetricsWriter(metrics_path, enabled=main, mirror=TensorBoardWriter(
                           os.path.join(workdir, tensorboard.LOGDIR),
                           lambda r: r.get("epoch"))))
        while run.epoch < config.epochs:
            _train_epoch(ctx, run)
    finally:
        ckpt.close()
        if ctx is not None:
            ctx.metrics.close()
    if start >= config.epochs:
        log.info("workdir %s already holds %d trained epochs; nothing to train", workdir, start)
    results = summarize(metrics_path, config, n_params, genotype)
    if main:
        with open(os.path.join(workdir, "results.json"), "w") as f:
            json.dump(results, f, indent=1)
    log.info("final test error %s, mean over the last %d epochs %s", results["final_test_error"],
             config.final_epochs, results["mean_test_error_last_epochs"])
    return results


def count_params_of(config: ml_collections.ConfigDict) -> int:
    """Parameters of the configured network without the auxiliary head (eval_shape; instant)."""
    validate(config)
    info = dataset_info(config.dataset)
    return param_count(genotype_of(config), info.num_classes, config.channels, config.layers,
                       info.image_shape)


def cost_of(config: ml_collections.ConfigDict) -> Cost:
    """Parameters and MAdds (batch 1, inference, DARTS' convention; `models.cost`) of the
    configured network without the auxiliary head; analytic, instant."""
    validate(config)
    info = dataset_info(config.dataset)
    return network_cost(genotype_of(config), info.num_classes, config.channels, config.layers,
                        info.image_shape)
