"""Retraining a genotype from scratch and evaluating it on the test set (SPEC §6).

The train state is a plain dict pytree: `params`, `batch_stats`, `opt_state`. `train_step`
gathers its batch on the device by index from the whole uint8 split, augments it in jit, and
takes one SGD step; the learning rate and drop-path probability are traced arguments. Batches
are split over the devices of `config.num_devices` (see parallel.py). The run directory holds
`config.json`, `metrics.jsonl`, `results.json` and orbax checkpoints (one per epoch, and one
where SIGTERM/SIGINT stopped the run); running again with the same workdir resumes exactly
where the last checkpoint was, mid-epoch included.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import time
from typing import Any, Callable

import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from prdarts_jax.data import DataSpec, EpochIterator, dataset_info, load_split
from prdarts_jax.errors import NonFiniteLossError, TrainingInterrupted
from prdarts_jax.models.network import Network, count_params, param_count
from prdarts_jax.optim import cosine_lr, cross_entropy, sgd
from prdarts_jax.runtime import interrupts, parallel
from prdarts_jax.runtime.checkpoints import Checkpointer
from prdarts_jax.runtime.config_checks import check_devices
from prdarts_jax.runtime.metrics import MetricsWriter, read_metrics
from prdarts_jax.space.genotypes import Genotype, load_genotype, save_genotype
from prdarts_jax.train.config import genotype_of, validate

log = logging.getLogger("prdarts_jax")

State = dict[str, Any]
CHECKPOINT_DIR = "checkpoints"
EPOCH_STRIDE = 1_000_000
"""Checkpoint numbers: epoch * EPOCH_STRIDE + step (the end of epoch e is number (e+1)·stride)."""
GENOTYPE_FILE = "genotype.json"


@dataclasses.dataclass(frozen=True)
class StepSettings:
    """What the compiled step depends on besides the network and the data (static)."""

    momentum: float = 0.9
    weight_decay: float = 3e-4
    grad_clip: float = 5.0
    aux_weight: float = 0.4


def step_settings(config: ml_collections.ConfigDict) -> StepSettings:
    return StepSettings(config.momentum, config.weight_decay, config.grad_clip,
                        config.aux_weight)


def data_spec(config: ml_collections.ConfigDict) -> DataSpec:
    info = dataset_info(config.dataset)
    return DataSpec(tuple(info.mean), tuple(info.std), info.pad, bool(config.flip),
                            int(config.cutout))


def build_network(config: ml_collections.ConfigDict, genotype: Genotype) -> Network:
    return Network(genotype, dataset_info(config.dataset).num_classes, config.channels,
                   config.layers, auxiliary=config.aux_weight > 0)


def optimizer(s: StepSettings) -> optax.GradientTransformation:
    """Global-norm clip, coupled weight decay, momentum (PyTorch SGD); the caller applies lr."""
    return sgd(momentum=s.momentum, weight_decay=s.weight_decay, grad_clip=s.grad_clip)


def compute_loss(net: Network, variables: dict, x: jax.Array, y: jax.Array, key: jax.Array,
                 drop_prob: jax.Array | float, aux_weight: float) -> tuple[jax.Array, dict]:
    """Training-mode loss CE + aux_weight · CE_aux (batch means), and what the step needs."""
    (logits, aux_logits), upd = net.apply(variables, x, True, drop_prob,
                                          rngs={"drop_path": key}, mutable=["batch_stats"])
    ce = jnp.mean(cross_entropy(logits, y))
    ce_aux = (jnp.mean(cross_entropy(aux_logits, y)) if aux_logits is not None
              else jnp.zeros(()))
    loss = ce + aux_weight * ce_aux
    acc = jnp.mean(jnp.argmax(logits, -1) == y)
    return loss, {"batch_stats": upd["batch_stats"], "logits": logits, "aux_logits": aux_logits,
                  "ce": ce, "ce_aux": ce_aux, "acc": acc}


@dataclasses.dataclass(frozen=True)
class Programs:
    """The jitted programs of one (network, data, settings) triple."""

    train_step: Callable[..., tuple[State, dict]]
    eval_batch: Callable[..., tuple[jax.Array, jax.Array]]


def make_programs(net: Network, data: DataSpec, s: StepSettings) -> Programs:
    """The train step (state donated) and the masked eval batch; both retrace only on new
    shapes, since lr and the drop probability are traced arguments."""
    tx = optimizer(s)

    def train_step(state: State, images: jax.Array, labels: jax.Array, idx: jax.Array,
                   key: jax.Array, lr: jax.Array, drop_prob: jax.Array) -> tuple[State, dict]:
        chex.assert_rank(idx, 1)
        aug_key, drop_key = jax.random.split(key)
        x = data.train_batch(aug_key, images[idx])
        y = labels[idx]

        def loss_fn(params):
            variables = {"params": params, "batch_stats": state["batch_stats"]}
            return compute_loss(net, variables, x, y, drop_key, drop_prob, s.aux_weight)

        (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"])
        updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
        params = jax.tree.map(lambda p, u: p - lr * u, state["params"], updates)
        new_state = {"params": params, "batch_stats": aux["batch_stats"], "opt_state": opt_state}
        return new_state, {"loss": loss, "ce": aux["ce"], "acc": aux["acc"]}

    def eval_batch(params: Any, batch_stats: Any, images: jax.Array, labels: jax.Array,
                   idx: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
        x = data.eval_batch(images[idx])
        logits, _ = net.apply({"params": params, "batch_stats": batch_stats}, x, False)
        y = labels[idx]
        losses = cross_entropy(logits, y)
        correct = jnp.argmax(logits, -1) == y
        return jnp.sum(losses * mask), jnp.sum(correct * mask)

    return Programs(jax.jit(train_step, donate_argnums=(0,)), jax.jit(eval_batch))


@functools.lru_cache(maxsize=4)
def programs_for(net: Network, data: DataSpec, s: StepSettings) -> Programs:
    """Programs kept for the process, so that runs of one structure share their compiles."""
    return make_programs(net, data, s)


def _init_fn(net: Network, image_shape: tuple[int, ...], tx: optax.GradientTransformation
             ) -> Callable[[jax.Array], State]:
    x = jnp.zeros((2, *image_shape), jnp.float32)

    def init(key: jax.Array) -> State:
        params_key, drop_key = jax.random.split(key)
        v = net.init({"params": params_key, "drop_path": drop_key}, x, True)
        return {"params": v["params"], "batch_stats": v["batch_stats"],
                "opt_state": tx.init(v["params"])}

    return init


@functools.lru_cache(maxsize=4)
def _init_program(net: Network, image_shape: tuple[int, ...], s: StepSettings
                  ) -> Callable[[jax.Array], State]:
    """The compiled init. On a CPU it is compiled without XLA optimisation: it runs once, and
    optimising hundreds of random initialisers costs minutes there."""
    init = jax.jit(_init_fn(net, image_shape, optimizer(s)))
    if jax.default_backend() != "cpu":
        return init
    return init.trace(jax.random.PRNGKey(0)).lower().compile(
        compiler_options={"xla_backend_optimization_level": 0})


def init_state(net: Network, key: jax.Array, image_shape: tuple[int, ...], s: StepSettings,
               placement: parallel.Placement | None = None) -> State:
    """Fresh train state: initialised variables and an empty optimizer state, replicated over
    the placement's devices like a restored state, so that both hit the same compiled step."""
    state = _init_program(net, tuple(image_shape), s)(key)
    return (placement or parallel.data_placement(1)).replicate(state)


def abstract_state(net: Network, image_shape: tuple[int, ...], s: StepSettings,
                   placement: parallel.Placement) -> State:
    """Shapes, dtypes and the replicated sharding of the train state: a restore target."""
    shapes = jax.eval_shape(_init_fn(net, image_shape, optimizer(s)), jax.random.PRNGKey(0))
    return placement.abstract(shapes)


def checkpointer(workdir: str, keep: int) -> Checkpointer:
    """The newest `keep` checkpoints under `<workdir>/checkpoints/<number>/{state,meta}`."""
    return Checkpointer(workdir, keep=keep, keep_every=0)


def evaluate(programs: Programs, state: State, images: jax.Array, labels: jax.Array,
             batch_size: int, placement: parallel.Placement) -> tuple[float, float]:
    """Mean test loss and accuracy in inference mode (the last batch padded and masked; the
    batch rounded up to a multiple of the device count)."""
    batch_size = parallel.round_up(batch_size, placement)
    n = int(labels.shape[0])
    total_loss = total_correct = 0.0
    for start in range(0, n, batch_size):
        count = min(batch_size, n - start)
        idx = np.zeros(batch_size, np.int32)
        idx[:count] = np.arange(start, start + count)
        mask = (np.arange(batch_size) < count).astype(np.float32)
        loss, correct = programs.eval_batch(state["params"], state["batch_stats"], images,
                                            labels, placement.shard_batch(idx),
                                            placement.shard_batch(mask))
        total_loss += float(loss)
        total_correct += float(correct)
    return total_loss / n, total_correct / n


def _check_finite(loss_sum: jax.Array, epoch: int, step: int) -> None:
    value = float(loss_sum)
    if not np.isfinite(value):
        raise NonFiniteLossError(f"non-finite loss ({value}) in epoch {epoch} by step {step}; "
                                 "lower config.lr or check the data")


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


def _run_epoch(programs: Programs, state: State, data: tuple[jax.Array, jax.Array],
               it: EpochIterator, key: jax.Array, progress: EpochProgress, *, epoch: int,
               lr: float, drop_prob: float, batch_size: int, log_every: int,
               stop: interrupts.StopFlag, placement: parallel.Placement
               ) -> tuple[State, dict | None]:
    """Steps from `progress.step` to the end of the epoch; returns the state and the epoch's
    record, or None as the record if a signal stopped it (then `progress` says where)."""
    images, labels = data
    lr_a, drop_a = jnp.float32(lr), jnp.float32(drop_prob)
    loss_sum, acc_sum = jnp.float32(progress.loss_sum), jnp.float32(progress.acc_sum)
    steps = progress.steps
    while progress.step < steps:
        step = progress.step
        interrupts.kill_at(epoch, step)
        idx = placement.shard_batch(it.next_batch(batch_size))
        state, m = programs.train_step(state, images, labels, idx, jax.random.fold_in(key, step),
                                       lr_a, drop_a)
        loss_sum, acc_sum = loss_sum + m["loss"], acc_sum + m["acc"]
        progress.step, progress.loss_sum, progress.acc_sum = step + 1, loss_sum, acc_sum
        if log_every and (step + 1) % log_every == 0:
            _check_finite(loss_sum, epoch, step)
            log.info("epoch %d step %d/%d loss %.4f", epoch, step + 1, steps, float(m["loss"]))
        if stop.signal is not None and progress.step < steps:
            return state, None
    _check_finite(loss_sum, epoch, steps - 1)
    return state, {"train_loss": float(loss_sum) / steps, "train_acc": float(acc_sum) / steps,
                   "steps": steps}


def _evaluated_epoch(epoch: int, config: ml_collections.ConfigDict) -> bool:
    return (epoch + 1) % config.eval_every == 0 or epoch >= config.epochs - config.final_epochs


def _keep_metrics_before(path: str, epoch: int) -> None:
    """Drops records of epochs >= `epoch` (written after the checkpoint we resume from)."""
    if not os.path.exists(path):
        return
    records = [r for r in read_metrics(path) if r.get("epoch", -1) < epoch]
    with open(path, "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in records)


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
    """results.json: the final test error and the mean over the last `final_epochs` epochs."""
    evals = {r["epoch"]: r for r in read_metrics(metrics_path) if "test_acc" in r}
    last = [evals[e] for e in range(config.epochs - config.final_epochs, config.epochs)
            if e in evals]
    final = evals.get(config.epochs - 1)
    return {
        "genotype": str(config.genotype),
        "genotype_cells": genotype.to_json(),
        "dataset": config.dataset,
        "params": params,
        "epochs": config.epochs,
        "final_test_loss": final and final["test_loss"],
        "final_test_acc": final and final["test_acc"],
        "final_test_error": final and 1 - final["test_acc"],
        "mean_test_error_last_epochs": (float(np.mean([1 - r["test_acc"] for r in last]))
                                        if last else None),
        "last_epochs_evaluated": [r["epoch"] for r in last],
    }


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Trains `config.genotype` from scratch (or resumes), writes everything into `workdir`,
    and returns the results (also in results.json)."""
    validate(config)
    placement = check_devices(config, ("batch_size",))
    with interrupts.StopFlag() as stop:
        return _train(config, workdir, placement, stop)


def _train(config: ml_collections.ConfigDict, workdir: str, placement: parallel.Placement,
           stop: interrupts.StopFlag) -> dict:
    genotype = genotype_of(config)
    info = dataset_info(config.dataset)
    net = build_network(config, genotype)
    settings = step_settings(config)
    main = parallel.is_main_process()
    os.makedirs(workdir, exist_ok=True)
    if main:
        _write_config(config, workdir)
        save_genotype(genotype, os.path.join(workdir, GENOTYPE_FILE))

    data_dir = config.data_dir or None
    train_np = load_split(config.dataset, "train", data_dir)
    test_np = load_split(config.dataset, "test", data_dir)
    train = placement.replicate((train_np[0], train_np[1].astype(np.int32)))
    test = placement.replicate((test_np[0], test_np[1].astype(np.int32)))
    programs = programs_for(net, data_spec(config), settings)

    key = jax.random.PRNGKey(config.seed)
    it = EpochIterator(np.arange(len(train_np[1])), seed=config.seed)
    ckpt = checkpointer(workdir, config.keep_checkpoints)
    try:
        restored = ckpt.restore_latest(
            lambda meta: abstract_state(net, info.image_shape, settings, placement))
        progress = None
        if restored is None:
            start = 0
            state = init_state(net, jax.random.fold_in(key, 0), info.image_shape, settings,
                               placement)
        else:
            state, meta = restored
            start = meta["epoch"]
            it.restore(meta["iterator"])
            key = jnp.asarray(meta["key"], jnp.uint32)
            if meta.get("progress"):
                progress = EpochProgress.from_json(meta["progress"])
            log.info("resumed at epoch %d, step %d", start, progress.step if progress else 0)
        n_params = count_params(state["params"])
        log.info("%s on %s: %d params (without the auxiliary head)", config.genotype,
                 config.dataset, n_params)

        metrics_path = os.path.join(workdir, "metrics.jsonl")
        if main:
            _keep_metrics_before(metrics_path, start)
        metrics = MetricsWriter(metrics_path, enabled=main)

        def save(epoch: int, progress: EpochProgress | None) -> None:
            ckpt.save(epoch * EPOCH_STRIDE + (progress.step if progress else 0), state, {
                "epoch": epoch, "iterator": it.state(),
                "key": np.asarray(jax.random.key_data(key)).tolist(),
                "progress": progress and progress.to_json()})

        for epoch in range(start, config.epochs):
            t0 = time.time()
            lr = cosine_lr(epoch, config.epochs, config.lr, config.lr_min)
            drop_prob = config.drop_path * epoch / config.epochs
            if progress is None:
                steps = it.steps_remaining(config.batch_size)
                progress = EpochProgress(min(steps, config.max_steps_per_epoch or steps))
            state, record = _run_epoch(
                programs, state, train, it, jax.random.fold_in(key, 1 + epoch), progress,
                epoch=epoch, lr=lr, drop_prob=drop_prob, batch_size=config.batch_size,
                log_every=config.log_every, stop=stop, placement=placement)
            if record is None:
                save(epoch, progress)
                raise TrainingInterrupted(
                    f"stopped by signal {stop.signal} in epoch {epoch} at step {progress.step}; "
                    "the state is saved: run the same command to resume")
            progress = None
            record = {"epoch": epoch, "lr": lr, "drop_path": drop_prob, **record,
                      "num_devices": placement.size}
            if _evaluated_epoch(epoch, config):
                record["test_loss"], record["test_acc"] = evaluate(
                    programs, state, *test, config.eval_batch_size, placement)
            record["seconds"] = time.time() - t0
            metrics.write(record)
            save(epoch + 1, None)
            log.info("epoch %d: lr %.4f drop %.3f train loss %.4f acc %.4f%s | %.1f s", epoch,
                     lr, drop_prob, record["train_loss"], record["train_acc"],
                     f" | test loss {record['test_loss']:.4f} acc {record['test_acc']:.4f}"
                     if "test_acc" in record else "", record["seconds"])
            if stop.signal is not None and epoch + 1 < config.epochs:
                raise TrainingInterrupted(
                    f"stopped by signal {stop.signal} after epoch {epoch}; the state is saved: "
                    "run the same command to resume")
    finally:
        ckpt.close()
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


def load_workdir_config(workdir: str) -> ml_collections.ConfigDict:
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} not found: --workdir must be a training run directory")
    with open(path) as f:
        return ml_collections.ConfigDict(json.load(f))


def evaluate_workdir(workdir: str, data_dir: str | None = None) -> dict:
    """Test-set loss/accuracy/error of the latest checkpoint in a training workdir."""
    config = load_workdir_config(workdir)
    saved = os.path.join(workdir, GENOTYPE_FILE)
    genotype = load_genotype(saved) if os.path.exists(saved) else genotype_of(config)
    info = dataset_info(config.dataset)
    net = build_network(config, genotype)
    settings = step_settings(config)
    placement = check_devices(config, ())
    ckpt = checkpointer(workdir, config.keep_checkpoints)
    try:
        restored = ckpt.restore_latest(
            lambda meta: abstract_state(net, info.image_shape, settings, placement))
    finally:
        ckpt.close()
    if restored is None:
        raise FileNotFoundError(f"no checkpoint in {os.path.join(workdir, CHECKPOINT_DIR)}")
    state, meta = restored
    images, labels = load_split(config.dataset, "test", data_dir or config.data_dir or None)
    programs = programs_for(net, data_spec(config), settings)
    loss, acc = evaluate(programs, state, *placement.replicate((images, labels.astype(np.int32))),
                         config.eval_batch_size, placement)
    step = meta["progress"]["step"] if meta.get("progress") else 0
    return {"epoch": meta["epoch"] - 1, "steps_after": step,
            "test_loss": loss, "test_acc": acc, "test_error": 1 - acc,
            "params": count_params(state["params"])}
