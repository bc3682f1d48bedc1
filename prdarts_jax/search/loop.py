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
import os
import shutil
import sys
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from prdarts_jax.data import DataSpec, EpochIterator, dataset_info, load_split, split_halves
from prdarts_jax.errors import NonFiniteLossError, SearchInterrupted
from prdarts_jax.models import formulations
from prdarts_jax.models.supernet import CELL_TYPES, Supernet, init_alphas
from prdarts_jax.optim import cosine_lr
from prdarts_jax.runtime import compile_cache, compile_timer, interrupts, parallel
from prdarts_jax.runtime.checkpoints import Checkpointer, position_id
from prdarts_jax.runtime.metrics import MetricsWriter, read_metrics
from prdarts_jax.search import bilevel
from prdarts_jax.search.batch_size import controller as batch_size
from prdarts_jax.search.batch_size import memory
from prdarts_jax.search.batch_size.executables import BatchPrograms
from prdarts_jax.search.boundary import transfer_variables, update_lineage
from prdarts_jax.search.config import ConfigError, check_devices, hyper, search_space, validate
from prdarts_jax.search.pools import CellPools, initial_pools, step_pools
from prdarts_jax.search.statistics import cycle_statistics
from prdarts_jax.space.genotypes import Genotype, derive_genotype, save_genotype

log = logging.getLogger("prdarts_jax")

GRAD_BATCH_ARG = 5
"""Position of the batch's index vector among the gradient programs' arguments."""


def build_supernet(pools: CellPools, config: ml_collections.ConfigDict,
                   num_classes: int) -> Supernet:
    edges = {t: tuple(edge.ops for edge in pools[t]) for t in CELL_TYPES}
    return Supernet(edges["normal"], edges["reduce"], num_classes, c=config.channels,
                    layers=config.layers, cell_output=config.cell_output)


def programs_for(net: Supernet, data: bilevel.DataSpec, h: bilevel.Hyper,
                 fuse: bool, compile_threads: int = 0) -> bilevel.StepPrograms:
    """Step programs per structure, kept for the process; the gradient programs keep their
    executables per batch size and can compile sizes ahead in `compile_threads` threads.

    The learning rate is a step argument, so it is not part of the key; the formulations of
    the primitives in force are."""
    impls = (formulations.default_impl("depthwise_conv"), formulations.default_impl("max_pool3"))
    return _programs(net, data, dataclasses.replace(h, lr_max=0.0, lr_min=0.0), fuse, impls,
                     compile_threads)


@functools.lru_cache(maxsize=8)
def _programs(net, data, h, fuse, impls, compile_threads):
    del impls
    p = bilevel.make_programs(net, data, h, fuse)
    grads = {name: BatchPrograms(getattr(p, name), GRAD_BATCH_ARG, compile_threads)
             for name in ("weight_grads", "alpha_grads")}
    if p.weight_grads is p.alpha_grads:
        grads["alpha_grads"] = grads["weight_grads"]
    return dataclasses.replace(p, **grads)


def init_variables(net: Supernet, key: jax.Array, image_shape: tuple[int, ...],
                   alphas: dict) -> dict:
    """Fresh supernet variables. Compiled without XLA optimisation: it runs once, and the
    optimised compile of this many random initialisers costs minutes on a small CPU."""
    x = jnp.zeros((2, *image_shape), jnp.float32)
    init = jax.jit(lambda k: net.init(k, x, alphas, False))
    compiled = init.trace(key).lower().compile(
        compiler_options={"xla_backend_optimization_level": 0})
    return dict(compiled(key))


def _prepare_workdir(workdir: str) -> None:
    """Creates the workdir; files of an unfinished run without checkpoints are moved aside."""
    if os.path.exists(os.path.join(workdir, "metrics.jsonl")):
        backup = os.path.join(workdir, f"previous-{time.strftime('%Y%m%d-%H%M%S')}")
        os.makedirs(backup)
        for name in os.listdir(workdir):
            if not name.startswith("previous-"):
                shutil.move(os.path.join(workdir, name), backup)
        log.warning("workdir %s held an unfinished search; moved it to %s and starting afresh",
                    workdir, backup)
    os.makedirs(workdir, exist_ok=True)


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


SAFE_CHANGES = ("log_every", "compilation_cache_dir", "data_dir", "allow_config_changes",
                "num_devices", "batch.compile_ahead")
"""Config keys that may differ on resume (with --config.allow_config_changes=True)."""

_METRIC_KEYS = ("train_loss", "train_acc", "alpha_loss", "alpha_acc")
"""Per-step values averaged into the epoch record."""


def evaluate(programs: bilevel.StepPrograms, state: dict, images: jax.Array, labels: jax.Array,
             indices: np.ndarray, batch_size: int, placement: parallel.Placement
             ) -> tuple[float, float]:
    """Mean loss and accuracy in inference mode over `indices` (padded to whole batches, of a
    size that divides by the device count)."""
    batch_size = parallel.round_up(batch_size, placement)
    total_loss = total_correct = 0.0
    for start in range(0, len(indices), batch_size):
        chunk = indices[start:start + batch_size]
        mask = np.zeros(batch_size, np.float32)
        mask[:len(chunk)] = 1.0
        idx = np.zeros(batch_size, np.int32)
        idx[:len(chunk)] = chunk
        loss, correct = programs.eval_batch(state["params"], state["alphas"],
                                            state["batch_stats"], images, labels,
                                            placement.shard_batch(idx),
                                            placement.shard_batch(mask))
        total_loss += float(loss)
        total_correct += float(correct)
    return total_loss / len(indices), total_correct / len(indices)


class _BatchSizer:
    """The batch size of each step: fixed, or the paper's memory-driven controller (SPEC §5)."""

    def __init__(self, config, state: batch_size.BatchSizeState | None):
        self.variable = bool(config.batch.variable)
        self.state = state
        self.fixed = config.batch_size
        self.probe = None
        self.last_usage: float | None = None
        self._usage: dict = {}
        if self.variable:
            budget = int(config.batch.memory_budget_mb * 2**20) or None
            self.probe = memory.make_probe(budget_bytes=budget)

    @property
    def b(self) -> int:
        return self.state.b if self.variable else self.fixed

    def start_cycle(self) -> None:
        if self.variable:
            self.state = batch_size.start_cycle(self.state)
            self._usage.clear()
            if self.probe is not None:
                self.probe.reset()

    def after_step(self, programs, args_for) -> None:
        if not self.variable:
            return
        usage = None
        if batch_size.should_probe(self.state):
            usage = self._read_usage(programs, args_for)
        old = self.state.b
        if usage is not None:
            self.last_usage = usage
            ahead = batch_size.predicted_sizes(self.state, usage)
            for program in {id(p): p for p in (programs.alpha_grads,
                                               programs.weight_grads)}.values():
                program.prefetch(args_for(old), ahead)
        self.state = batch_size.after_step(self.state, usage)
        if self.state.b != old:
            log.info("batch size %d -> %d (memory usage %.3f)", old, self.state.b, usage)

    def _read_usage(self, programs, args_for) -> float | None:
        if isinstance(self.probe, memory.CompiledMemoryProbe):
            b = self.state.b
            if b not in self._usage:
                self._usage[b] = self.probe.usage([programs.weight_grads.executable(
                    args_for(b))])
                log.info("memory analysis at batch %d: usage %.4f", b, self._usage[b])
            return self._usage[b]
        # between new peaks the device probe adds the step's own temporaries to what is in use;
        # the executable is the one the step just ran (no compile)
        usage = self.probe.usage([programs.weight_grads.executable(args_for(self.state.b))])
        self.probe.reset()
        return usage

    def on_oom(self, err: BaseException) -> None:
        if not (self.variable and batch_size.is_oom(err)):
            raise err
        old = self.state.b
        self.state = batch_size.on_oom(self.state)
        log.warning("out of memory at batch %d; stepping back to %d", old, self.state.b)


def _run_epoch(programs, state, data, iters, pos, hist, *, lr, search, sizer, max_steps, key,
               log_every, stop, placement):
    """Steps of one epoch from `pos[2]`; with `search`, an α step precedes each weight step.

    The epoch ends when the weight half's iterator has served an epoch of samples (whatever the
    batch sizes were) or after `max_steps` steps. Per-step losses, accuracies and batch sizes
    are appended to `hist` (host floats, so that an epoch interrupted and resumed sums exactly as
    one run straight through). Returns the state, the step reached, and whether the epoch ended
    (False when stopped by a signal).
    """
    images, labels = data
    w_iter, a_iter = iters
    cycle, epoch, start = pos
    progress = _Progress(w_iter.steps_remaining(sizer.b), f"cycle {cycle} epoch {epoch}")
    pending: list = []

    def flush(upto: int) -> None:
        if not pending:
            return
        values = jax.device_get(pending)
        for i, m in enumerate(values):
            for k, v in m.items():
                hist.setdefault(k, []).append(float(v))
            if not np.isfinite(m["train_loss"]):
                raise NonFiniteLossError(
                    f"non-finite loss ({float(m['train_loss'])}) at cycle {cycle}, epoch "
                    f"{epoch}, step {upto - len(values) + i}; lower config.lr_max or check the "
                    "data")
        pending.clear()

    step, done = start, False
    while not done:
        interrupts.kill_at(cycle, epoch, step)
        step_key = jax.random.fold_in(key, step)
        b = sizer.b
        a_idx = placement.shard_batch(a_iter.next_batch(b)) if search else None
        w_idx = placement.shard_batch(w_iter.next_batch(b))
        while True:
            try:
                m = {"batch_size": b}
                new_state = state
                if search:
                    new_state, am = bilevel.alpha_step(programs, new_state, images, labels,
                                                       a_idx[:b], jax.random.fold_in(step_key, 1))
                    m.update(alpha_loss=am["loss"], alpha_acc=am["acc"])
                new_state, wm = bilevel.weight_step(programs, new_state, images, labels,
                                                    w_idx[:b], jax.random.fold_in(step_key, 0),
                                                    lr)
                break
            except Exception as err:  # noqa: BLE001 - only out-of-memory is handled
                sizer.on_oom(err)
                b = sizer.b
        state = new_state
        m.update(train_loss=wm["loss"], train_acc=wm["acc"])
        pending.append(m)
        step += 1
        done = w_iter.epoch_done or (max_steps and step >= max_steps)
        sizer.after_step(programs, lambda size: (
            state["params"], state["alphas"], state["batch_stats"], images, labels,
            placement.shard_batch(np.zeros(size, np.int32)), jax.random.PRNGKey(0)))
        if len(pending) >= 10 or done or stop.signal is not None:
            flush(step)
        if progress.bar is not None:
            progress.update(loss=float(wm["loss"]))
        elif log_every and step % log_every == 0:
            log.info("cycle %d epoch %d step %d loss %.4f", cycle, epoch, step,
                     float(wm["loss"]))
        if stop.signal is not None:
            break
    progress.close()
    return state, step, bool(done)


def _config_json(config: ml_collections.ConfigDict) -> dict:
    return json.loads(config.to_json_best_effort())


def _check_config(saved: dict, current: dict, allow: bool) -> None:
    """Refuses a resume whose config differs, except SAFE_CHANGES with the explicit flag."""
    def flat(d, prefix=""):
        out = {}
        for k, v in d.items():
            if isinstance(v, dict):
                out.update(flat(v, f"{prefix}{k}."))
            else:
                out[f"{prefix}{k}"] = v
        return out
    a, b = flat(saved), flat(current)
    differing = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    unsafe = [k for k in differing if not (allow and k in SAFE_CHANGES)]
    if unsafe:
        hint = ("" if allow or any(k not in SAFE_CHANGES for k in differing) else
                "; pass --config.allow_config_changes=True to accept these")
        raise ConfigError(
            f"the workdir holds a search with a different config ({', '.join(unsafe)}): resume "
            f"with the same config or use a new --workdir{hint}")
    if differing:
        log.warning("resuming with changed config keys: %s", ", ".join(differing))


def _abstract_state(net: Supernet, config, info, h: bilevel.Hyper,
                    placement: parallel.Placement) -> dict:
    x = jnp.zeros((2, *info.image_shape), jnp.float32)

    def init():
        alphas = init_alphas(jax.random.PRNGKey(0), net.normal, net.reduce)
        v = net.init(jax.random.PRNGKey(0), x, alphas, False)
        return {"params": v["params"], "batch_stats": v["batch_stats"], "alphas": alphas,
                **bilevel.fresh_optimizer_states(h, v["params"], alphas)}

    return placement.abstract(jax.eval_shape(init))


def _lineage_from_json(d: dict) -> dict:
    return {t: {int(e): {c: tuple(v) for c, v in m.items()} for e, m in edges.items()}
            for t, edges in d.items()}


def _stats_record(cycle: int, pools: CellPools, report, schedule) -> dict:
    """The statistics of the pools a cycle trains with (written before the cycle starts)."""
    settings = {k: schedule[k][cycle - 1] for k in ("epochs", "grace", "keep", "morphs")}
    return {"type": "cycle_stats", "cycle": cycle,
            **cycle_statistics(pools, report, settings=settings)}


def _cycle_compile_seconds(metrics_path: str, cycle: int) -> float:
    """Compile seconds summed over the epochs of `cycle` (in metrics.jsonl, so a resumed cycle
    counts the epochs before the interruption too)."""
    if not os.path.exists(metrics_path):
        return 0.0
    return float(sum(r.get("compile_seconds", 0.0) for r in read_metrics(metrics_path)
                     if r.get("type") == "epoch" and r["cycle"] == cycle))


def _finish(workdir: str, genotype: Genotype, pools: CellPools) -> None:
    if not parallel.is_main_process():
        return
    with open(os.path.join(workdir, "final_pools.json"), "w") as f:
        json.dump(pools.to_json(), f, indent=1)
    with open(os.path.join(workdir, "genotype.txt"), "w") as f:
        f.write(genotype.describe() + "\n")
    save_genotype(genotype, os.path.join(workdir, "genotype.json"))


def run_search(config: ml_collections.ConfigDict, workdir: str) -> Genotype | None:
    """Runs the whole search, resuming from the workdir's latest checkpoint if there is one.

    Writes config, metrics, checkpoints and the genotype into `workdir`; returns the genotype,
    or None if the workdir already held a finished search.
    """
    validate(config)
    placement = check_devices(config)
    compile_cache.enable(config.compilation_cache_dir)
    with (formulations.use_impls(config.depthwise_impl, config.pool_impl),
          interrupts.StopFlag() as stop):
        return _search(config, workdir, stop, placement)


def _search(config: ml_collections.ConfigDict, workdir: str, stop: interrupts.StopFlag,
            placement: parallel.Placement) -> Genotype | None:
    space = search_space(config)
    info = dataset_info(config.dataset)
    h = hyper(config)
    if os.path.exists(os.path.join(workdir, "genotype.json")):
        log.info("workdir %s already holds a finished search (genotype.json); nothing to do",
                 workdir)
        return None
    config_path = os.path.join(workdir, "config.json")
    has_checkpoints = os.path.isdir(os.path.join(workdir, "checkpoints"))
    if has_checkpoints and os.path.exists(config_path):
        with open(config_path) as f:
            _check_config(json.load(f), _config_json(config), config.allow_config_changes)
    elif not has_checkpoints and parallel.is_main_process():
        _prepare_workdir(workdir)
    ckpt = Checkpointer(workdir)
    try:
        restored = ckpt.restore_latest(lambda meta: _abstract_state(
            build_supernet(CellPools.from_json(meta["pools"]), config, info.num_classes),
            config, info, h, placement))
        if parallel.is_main_process():
            with open(config_path, "w") as f:
                f.write(config.to_json_best_effort(indent=1))
        return _cycles(config, workdir, stop, ckpt, restored, space, info, h, placement)
    finally:
        ckpt.close()


def _cycles(config, workdir, stop, ckpt, restored, space, info, h, placement
            ) -> Genotype | None:
    schedule = config.schedule
    n_cycles = len(schedule.epochs)
    metrics_path = os.path.join(workdir, "metrics.jsonl")
    images_np, labels_np = load_split(config.dataset, "train", config.data_dir or None)
    w_idx, a_idx = split_halves(len(images_np), config.train_portion)
    images, labels = placement.replicate((images_np, labels_np.astype(np.int32)))
    data_spec = DataSpec(tuple(info.mean), tuple(info.std), info.pad)
    eval_idx = a_idx[:config.eval_max_samples] if config.eval_max_samples else a_idx
    key = jax.random.PRNGKey(config.seed)
    metrics = MetricsWriter(metrics_path, enabled=parallel.is_main_process())
    clock = time.time()

    if restored is None:
        np_rng = np.random.default_rng(config.seed)
        w_iter = EpochIterator(w_idx, np_rng.integers(2**63))
        a_iter = EpochIterator(a_idx, np_rng.integers(2**63))
        pools, lineage = initial_pools(), {}
        net = build_supernet(pools, config, info.num_classes)
        alphas = init_alphas(jax.random.fold_in(key, 1), net.normal, net.reduce,
                             config.alpha_init_scale)
        variables = init_variables(net, jax.random.fold_in(key, 2), info.image_shape, alphas)
        state = {"params": variables["params"], "batch_stats": variables["batch_stats"],
                 "alphas": alphas, **bilevel.fresh_optimizer_states(h, variables["params"],
                                                                    alphas)}
        state = placement.replicate(state)
        pos, hist, elapsed = (1, 0, 0), {}, 0.0
        batch_state = (batch_size.initial_state(
            config.batch.min, config.batch.step, config.batch.max, config.batch.interval,
            config.batch.target) if config.batch.variable else None)
        metrics.truncate(0)
        metrics.write(_stats_record(1, pools, None, schedule))
    else:
        state, meta = restored
        np_rng = np.random.default_rng()
        np_rng.bit_generator.state = meta["np_rng"]
        w_iter = EpochIterator.from_state(w_idx, meta["w_iter"])
        a_iter = EpochIterator.from_state(a_idx, meta["a_iter"])
        pools, lineage = CellPools.from_json(meta["pools"]), _lineage_from_json(meta["lineage"])
        net = build_supernet(pools, config, info.num_classes)
        pos, hist, elapsed = tuple(meta["position"]), meta["hist"], meta["elapsed"]
        batch_state = (batch_size.BatchSizeState.from_json(meta["batch"]) if meta.get("batch")
                       else None)
        metrics.truncate(meta["metrics_offset"])
        log.info("resumed from cycle %d, epoch %d, step %d", *pos)
        if meta.get("finished"):
            genotype = Genotype.from_json(meta["genotype"])
            _finish(workdir, genotype, pools)
            return genotype

    sizer = _BatchSizer(config, batch_state)

    def save(position, state, pools, lineage, hist, **extra) -> None:
        ckpt.save(position_id(*position), state, {
            "position": list(position), "pools": pools.to_json(),
            "lineage": {t: {str(e): m for e, m in v.items()} for t, v in lineage.items()},
            "np_rng": np_rng.bit_generator.state, "w_iter": w_iter.state(),
            "a_iter": a_iter.state(), "hist": hist, "batch": sizer.state and
            sizer.state.to_json(), "metrics_offset":
            metrics.size(), "elapsed": elapsed + time.time() - clock, **extra})

    cycle, epoch, step = pos
    while cycle <= n_cycles:
        if epoch == 0 and step == 0:
            sizer.start_cycle()
        epochs, grace = schedule.epochs[cycle - 1], schedule.grace[cycle - 1]
        programs = programs_for(net, data_spec, h, config.fuse_grad_programs,
                                config.batch.compile_ahead if config.batch.variable else 0)
        if epoch == 0 and step == 0:
            log.info("cycle %d/%d: ops per edge %s", cycle, n_cycles,
                     sorted(set(pools.op_counts()["normal"] + pools.op_counts()["reduce"])))
        while epoch < epochs:
            t0, c0 = time.time(), compile_timer.total_seconds()
            lr = cosine_lr(epoch, epochs, h.lr_max, h.lr_min)
            epoch_key = jax.random.fold_in(jax.random.fold_in(key, 100 + cycle), epoch)
            state, step, done = _run_epoch(
                programs, state, (images, labels), (w_iter, a_iter), (cycle, epoch, step), hist,
                lr=lr, search=epoch >= grace, sizer=sizer, max_steps=config.max_steps_per_epoch,
                key=epoch_key, log_every=config.log_every, stop=stop, placement=placement)
            if not done:
                save((cycle, epoch, step), state, pools, lineage, hist)
                raise SearchInterrupted(
                    f"stopped by signal {stop.signal} at cycle {cycle}, epoch {epoch}, step "
                    f"{step}; the state is saved: run the same command to resume")
            val_loss, val_acc = evaluate(programs, state, images, labels, eval_idx,
                                         config.eval_batch_size, placement)
            train = {k: float(np.mean(hist[k])) for k in _METRIC_KEYS if hist.get(k)}
            record = {"type": "epoch", "cycle": cycle, "epoch": epoch, "lr": lr, **train,
                      "val_loss": val_loss, "val_acc": val_acc,
                      "batch_size": int(hist["batch_size"][-1]),
                      "batch_size_mean": float(np.mean(hist["batch_size"])), "steps": step,
                      "seconds": time.time() - t0,
                      "compile_seconds": compile_timer.total_seconds() - c0,
                      "memory_usage": sizer.last_usage, **memory.memory_in_use(),
                      "num_devices": placement.size,
                      "grace": epoch < grace}
            metrics.write(record)
            log.info("cycle %d epoch %d: lr %.4f train loss %.4f acc %.3f | val loss %.4f "
                     "acc %.3f | %.1f s", cycle, epoch, lr, train["train_loss"],
                     train["train_acc"], val_loss, val_acc, record["seconds"])
            epoch, step, hist = epoch + 1, 0, {}
            if epoch < epochs:
                save((cycle, epoch, 0), state, pools, lineage, hist)
            if stop.signal is not None and epoch < epochs:
                raise SearchInterrupted(
                    f"stopped by signal {stop.signal} after cycle {cycle}, epoch {epoch - 1}; "
                    "the state is saved: run the same command to resume")
        alphas_np = {t: [np.asarray(a) for a in state["alphas"][t]] for t in CELL_TYPES}
        final = cycle == n_cycles
        genotype = derive_genotype({"normal": net.normal, "reduce": net.reduce},
                                   alphas_np) if final else None
        new_pools, report = step_pools(
            pools, alphas_np, keep=schedule.keep[cycle - 1], morphs=schedule.morphs[cycle - 1],
            final=final, space=space, rng=np_rng, max_tries=config.max_tries,
            revisit_after=config.revisit_after)
        metrics.write({"type": "cycle", "cycle": cycle, "report": report.to_json(),
                       "pools": new_pools.to_json(),
                       "compile_seconds": _cycle_compile_seconds(metrics_path, cycle)})
        if final:
            save((cycle + 1, 0, 0), state, new_pools, lineage, {}, finished=True,
                 genotype=genotype.to_json())
            _finish(workdir, genotype, new_pools)
            log.info("search finished; genotype:\n%s", genotype.describe())
            return genotype
        lineage = update_lineage(lineage, report)
        variables = transfer_variables(
            {"params": state["params"], "batch_stats": state["batch_stats"]}, report,
            new_pools, config.layers, jax.random.fold_in(key, 1000 + cycle),
            lineage if config.reinit_morphed_every_cycle else None)
        pools = new_pools
        net = build_supernet(pools, config, info.num_classes)
        alphas = init_alphas(jax.random.fold_in(key, 2000 + cycle), net.normal, net.reduce,
                             config.alpha_init_scale)
        state = placement.replicate({"params": variables["params"],
                            "batch_stats": variables["batch_stats"], "alphas": alphas,
                            **bilevel.fresh_optimizer_states(h, variables["params"], alphas)})
        cycle, epoch, step = cycle + 1, 0, 0
        metrics.write(_stats_record(cycle, pools, report, schedule))
        save((cycle, 0, 0), state, pools, lineage, {})
        if stop.signal is not None:
            raise SearchInterrupted(
                f"stopped by signal {stop.signal} at the start of cycle {cycle}; the state is "
                "saved: run the same command to resume")
    return None
