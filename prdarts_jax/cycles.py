"""One PR-DARTS search: cycles of bilevel training with prune-and-replace between them.

`run_search(config, workdir)` is the library entry point behind `python -m prdarts_jax.search`.
Structure changes (pruning, morphing, building the next supernet) happen on the host between
cycles; the step programs are then re-jitted for the new structure.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import math
import os
import shutil
import sys
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from prdarts_jax import bilevel, compile_cache, primitives
from prdarts_jax.data import dataset_info, load_split, split_halves, EpochIterator
from prdarts_jax.errors import NonFiniteLossError
from prdarts_jax.genotypes import Genotype, derive_genotype, save_genotype
from prdarts_jax.metrics import MetricsWriter
from prdarts_jax.pools import CellPools, initial_pools, step_pools
from prdarts_jax.search_config import hyper, search_space, validate
from prdarts_jax.supernet import CELL_TYPES, Supernet, init_alphas
from prdarts_jax.transition import transfer_variables, update_lineage

log = logging.getLogger("prdarts_jax")


def build_supernet(pools: CellPools, config: ml_collections.ConfigDict,
                   num_classes: int) -> Supernet:
    edges = {t: tuple(edge.ops for edge in pools[t]) for t in CELL_TYPES}
    return Supernet(edges["normal"], edges["reduce"], num_classes, c=config.channels,
                    layers=config.layers, cell_output=config.cell_output)


def programs_for(net: Supernet, data: bilevel.DataSpec, h: bilevel.Hyper,
                 fuse: bool) -> bilevel.StepPrograms:
    """Step programs per structure, kept for the process (jit caches per batch shape).

    The learning rate is a step argument, so it is not part of the key; the formulations of
    the primitives in force are."""
    impls = (primitives.default_impl("depthwise_conv"), primitives.default_impl("max_pool3"))
    return _programs(net, data, dataclasses.replace(h, lr_max=0.0, lr_min=0.0), fuse, impls)


@functools.lru_cache(maxsize=8)
def _programs(net, data, h, fuse, impls):
    del impls
    return bilevel.make_programs(net, data, h, fuse)


def init_variables(net: Supernet, key: jax.Array, image_shape: tuple[int, ...],
                   alphas: dict) -> dict:
    """Fresh supernet variables. Compiled without XLA optimisation: it runs once, and the
    optimised compile of this many random initialisers costs minutes on a small CPU."""
    x = jnp.zeros((2, *image_shape), jnp.float32)
    init = jax.jit(lambda k: net.init(k, x, alphas, False))
    compiled = init.trace(key).lower().compile(
        compiler_options={"xla_backend_optimization_level": 0})
    return dict(compiled(key))


def _prepare_workdir(workdir: str) -> bool:
    """Creates the workdir; returns False if it already holds a finished search."""
    if os.path.exists(os.path.join(workdir, "genotype.json")):
        return False
    if os.path.exists(os.path.join(workdir, "metrics.jsonl")):
        backup = os.path.join(workdir, f"previous-{time.strftime('%Y%m%d-%H%M%S')}")
        os.makedirs(backup)
        for name in os.listdir(workdir):
            if not name.startswith("previous-"):
                shutil.move(os.path.join(workdir, name), backup)
        log.warning("workdir %s held an unfinished search; moved it to %s and starting afresh",
                    workdir, backup)
    os.makedirs(workdir, exist_ok=True)
    return True


class _Progress:
    """A progress bar on a terminal, nothing otherwise."""

    def __init__(self, total: int, desc: str):
        self.bar = None
        if sys.stderr.isatty():
            from tqdm import tqdm
            self.bar = tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True)

    def update(self, **postfix: float) -> None:
        if self.bar is not None:
            self.bar.set_postfix({k: f"{v:.3f}" for k, v in postfix.items()}, refresh=False)
            self.bar.update()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _check_finite(losses: list, cycle: int, epoch: int, first_step: int) -> None:
    values = np.asarray(jax.device_get(losses), np.float64)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise NonFiniteLossError(
            f"non-finite loss ({values[bad[0]]}) at cycle {cycle}, epoch {epoch}, step "
            f"{first_step + int(bad[0])}; lower config.lr_max or check the data")


def evaluate(programs: bilevel.StepPrograms, state: dict, images: jax.Array, labels: jax.Array,
             indices: np.ndarray, batch_size: int) -> tuple[float, float]:
    """Mean loss and accuracy in inference mode over `indices` (padded to whole batches)."""
    total_loss = total_correct = 0.0
    for start in range(0, len(indices), batch_size):
        chunk = indices[start:start + batch_size]
        mask = np.zeros(batch_size, np.float32)
        mask[:len(chunk)] = 1.0
        idx = np.zeros(batch_size, np.int32)
        idx[:len(chunk)] = chunk
        loss, correct = programs.eval_batch(state["params"], state["alphas"],
                                            state["batch_stats"], images, labels, idx, mask)
        total_loss += float(loss)
        total_correct += float(correct)
    return total_loss / len(indices), total_correct / len(indices)


def _run_epoch(programs, state, data, iters, *, cycle, epoch, lr, search, batch_size,
               max_steps, key, log_every):
    """One epoch over the weight half; with `search`, an α step precedes each weight step."""
    images, labels = data
    w_iter, a_iter = iters
    steps = w_iter.steps_remaining(batch_size)
    if max_steps:
        steps = min(steps, max_steps)
    progress = _Progress(steps, f"cycle {cycle} epoch {epoch}")
    sums = {"train_loss": 0.0, "train_acc": 0.0, "alpha_loss": 0.0, "alpha_acc": 0.0}
    pending: list = []
    first_pending = 0
    step = 0
    for step in range(steps):
        step_key = jax.random.fold_in(key, step)
        if search:
            idx = a_iter.next_batch(batch_size)
            state, am = bilevel.alpha_step(programs, state, images, labels, idx,
                                           jax.random.fold_in(step_key, 1))
            sums["alpha_loss"] += am["loss"]
            sums["alpha_acc"] += am["acc"]
        idx = w_iter.next_batch(batch_size)
        state, wm = bilevel.weight_step(programs, state, images, labels, idx,
                                        jax.random.fold_in(step_key, 0), lr)
        sums["train_loss"] += wm["loss"]
        sums["train_acc"] += wm["acc"]
        pending.append(wm["loss"])
        if len(pending) >= 10 or step == steps - 1:
            _check_finite(pending, cycle, epoch, first_pending)
            first_pending, pending = step + 1, []
        if progress.bar is not None:
            progress.update(loss=float(wm["loss"]))
        elif log_every and (step + 1) % log_every == 0:
            log.info("cycle %d epoch %d step %d/%d loss %.4f", cycle, epoch, step + 1, steps,
                     float(wm["loss"]))
    progress.close()
    n = max(steps, 1)
    out = {k: float(v) / n for k, v in sums.items()}
    if not search:
        out.pop("alpha_loss"), out.pop("alpha_acc")
    return state, out, steps


def run_search(config: ml_collections.ConfigDict, workdir: str) -> Genotype | None:
    """Runs the whole search; writes config, metrics and the genotype into `workdir`."""
    validate(config)
    compile_cache.enable(config.compilation_cache_dir)
    with primitives.use_impls(config.depthwise_impl, config.pool_impl):
        return _search(config, workdir)


def _search(config: ml_collections.ConfigDict, workdir: str) -> Genotype | None:
    space = search_space(config)
    info = dataset_info(config.dataset)
    if not _prepare_workdir(workdir):
        log.info("workdir %s already holds a finished search (genotype.json); nothing to do",
                 workdir)
        return None
    with open(os.path.join(workdir, "config.json"), "w") as f:
        f.write(config.to_json_best_effort(indent=1))
    images_np, labels_np = load_split(config.dataset, "train", config.data_dir or None)
    w_idx, a_idx = split_halves(len(images_np), config.train_portion)
    images, labels = jnp.asarray(images_np), jnp.asarray(labels_np, jnp.int32)
    data_spec = bilevel.DataSpec(tuple(info.mean), tuple(info.std), info.pad)
    h = hyper(config)
    schedule = config.schedule
    n_cycles = len(schedule.epochs)

    np_rng = np.random.default_rng(config.seed)
    key = jax.random.PRNGKey(config.seed)
    w_iter = EpochIterator(w_idx, np_rng.integers(2**63))
    a_iter = EpochIterator(a_idx, np_rng.integers(2**63))
    eval_idx = a_idx[:config.eval_max_samples] if config.eval_max_samples else a_idx
    pools = initial_pools()
    lineage: dict = {}
    net = build_supernet(pools, config, info.num_classes)
    alphas = init_alphas(jax.random.fold_in(key, 1), net.normal, net.reduce,
                         config.alpha_init_scale)
    variables = init_variables(net, jax.random.fold_in(key, 2), info.image_shape, alphas)
    metrics = MetricsWriter(os.path.join(workdir, "metrics.jsonl"))
    genotype = None
    start = time.time()

    for cycle in range(1, n_cycles + 1):
        epochs, grace = schedule.epochs[cycle - 1], schedule.grace[cycle - 1]
        programs = programs_for(net, data_spec, h, config.fuse_grad_programs)
        state = {"params": variables["params"], "batch_stats": variables["batch_stats"],
                 "alphas": alphas, **bilevel.fresh_optimizer_states(h, variables["params"],
                                                                    alphas)}
        log.info("cycle %d/%d: ops per edge %s", cycle, n_cycles,
                 sorted(set(pools.op_counts()["normal"] + pools.op_counts()["reduce"])))
        for epoch in range(epochs):
            t0 = time.time()
            lr = bilevel.cosine_lr(epoch, epochs, h.lr_max, h.lr_min)
            state, train, steps = _run_epoch(
                programs, state, (images, labels), (w_iter, a_iter), cycle=cycle, epoch=epoch,
                lr=lr, search=epoch >= grace, batch_size=config.batch_size,
                max_steps=config.max_steps_per_epoch,
                key=jax.random.fold_in(jax.random.fold_in(key, 100 + cycle), epoch),
                log_every=config.log_every)
            val_loss, val_acc = evaluate(programs, state, images, labels, eval_idx,
                                         config.eval_batch_size)
            record = {"type": "epoch", "cycle": cycle, "epoch": epoch, "lr": lr,
                      **train, "val_loss": val_loss, "val_acc": val_acc,
                      "batch_size": config.batch_size, "steps": steps,
                      "seconds": time.time() - t0, "grace": epoch < grace}
            metrics.write(record)
            log.info("cycle %d epoch %d: lr %.4f train loss %.4f acc %.3f | val loss %.4f "
                     "acc %.3f | %.1f s", cycle, epoch, lr, train["train_loss"],
                     train["train_acc"], val_loss, val_acc, record["seconds"])
        alphas_np = {t: [np.asarray(a) for a in state["alphas"][t]] for t in CELL_TYPES}
        final = cycle == n_cycles
        if final:
            genotype = derive_genotype({"normal": net.normal, "reduce": net.reduce}, alphas_np)
        new_pools, report = step_pools(
            pools, alphas_np, keep=schedule.keep[cycle - 1], morphs=schedule.morphs[cycle - 1],
            final=final, space=space, rng=np_rng, max_tries=config.max_tries,
            revisit_after=config.revisit_after)
        metrics.write({"type": "cycle", "cycle": cycle, "report": report.to_json(),
                       "pools": new_pools.to_json(), "seconds": time.time() - start})
        variables = {"params": state["params"], "batch_stats": state["batch_stats"]}
        if not final:
            lineage = update_lineage(lineage, report)
            variables = transfer_variables(
                variables, report, new_pools, config.layers,
                jax.random.fold_in(key, 1000 + cycle),
                lineage if config.reinit_morphed_every_cycle else None)
            net = build_supernet(new_pools, config, info.num_classes)
            alphas = init_alphas(jax.random.fold_in(key, 2000 + cycle), net.normal, net.reduce,
                                 config.alpha_init_scale)
        pools = new_pools

    save_genotype(genotype, os.path.join(workdir, "genotype.json"))
    with open(os.path.join(workdir, "genotype.txt"), "w") as f:
        f.write(genotype.describe() + "\n")
    with open(os.path.join(workdir, "final_pools.json"), "w") as f:
        json.dump(pools.to_json(), f, indent=1)
    log.info("search finished in %.1f min; genotype:\n%s", (time.time() - start) / 60,
             genotype.describe())
    return genotype
