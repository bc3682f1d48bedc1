"""One PR-DARTS cycle: its epochs of bilevel training (after the grace epochs an α step
precedes each weight step), then its end: prune and replace, and carry the weights over.

Structure changes happen here on the host between cycles; the next cycle's step programs are
built (jitted) for the new supernet.
"""

from __future__ import annotations

import logging
import os
import time

import jax
import ml_collections
import numpy as np

from prdarts_jax.errors import NonFiniteLossError, SearchInterrupted
from prdarts_jax.loops.compile import announced, first_use
from prdarts_jax.loops.epoch import run_epoch
from prdarts_jax.loops.evaluate import evaluate
from prdarts_jax.loops.progress import duration
from prdarts_jax.models.supernet import Supernet, init_alphas
from prdarts_jax.optim import cosine_lr
from prdarts_jax.runtime import compile_timer
from prdarts_jax.runtime.metrics import read_metrics
from prdarts_jax.search import bilevel, eta, morph_scores
from prdarts_jax.search.batch_size import memory
from prdarts_jax.search.boundary import transfer_variables, update_lineage
from prdarts_jax.search.context import SearchContext
from prdarts_jax.search.cost_penalty import penalty_of
from prdarts_jax.search.deepen import carry_into_depth
from prdarts_jax.search.pools import KindProbs, step_pools
from prdarts_jax.search.relaxation import cycle_tau, relaxation_of, tau_args
from prdarts_jax.search.run import SearchRun, save
from prdarts_jax.search.statistics import stats_record
from prdarts_jax.search.structure import build_supernet, cycle_state, init_variables, programs_for
from prdarts_jax.space.genotypes import Genotype, derive_genotype
from prdarts_jax.space.spaces import CELL_TYPES

log = logging.getLogger("prdarts_jax")

_METRIC_KEYS = ("train_loss", "train_acc", "alpha_loss", "alpha_acc", "alpha_cost")
"""Per-step values averaged into the epoch record (`alpha_cost` only with a cost penalty)."""


def train_cycle(ctx: SearchContext, run: SearchRun, net: Supernet) -> None:
    """The epochs of the cycle `run` is in, from where it stands to the end of the last one.
    Saves after each epoch but the last; raises SearchInterrupted after a signal (saved)."""
    config = ctx.config
    cycle, epoch, step = run.position
    epochs = config.schedule.epochs[cycle - 1]
    if epoch == 0 and step == 0:
        run.sizer.start_cycle()
    programs = programs_for(net, ctx.data_spec, ctx.h, config.fuse_grad_programs,
                            config.batch.compile_ahead if config.batch.variable else 0,
                            relaxation=relaxation_of(config),
                            penalty=penalty_of(config, net, ctx.info.image_shape))
    if epoch == 0 and step == 0:
        counts = run.pools.op_counts()
        log.info("cycle %d/%d: ops per edge %s", cycle, ctx.n_cycles,
                 sorted(set(counts["normal"] + counts["reduce"])))
    while run.position[1] < epochs:
        _train_epoch(ctx, run, programs)
        cycle, epoch, _ = run.position
        if epoch < epochs:
            save(ctx, run)
            if ctx.stop.signal is not None:
                raise SearchInterrupted(
                    f"stopped by signal {ctx.stop.signal} after cycle {cycle}, epoch "
                    f"{epoch - 1}; the state is saved: run the same command to resume")


def cycle_lr(config: ml_collections.ConfigDict, cycle: int, epoch: int) -> float:
    """The weights' learning rate in `epoch` of `cycle` (both from the config's schedule)."""
    return cosine_lr(epoch, config.schedule.epochs[cycle - 1], config.lr_max, config.lr_min,
                     reach_min=config.lr_schedule == "reach_min")


def _train_epoch(ctx: SearchContext, run: SearchRun, programs: bilevel.StepPrograms) -> None:
    """One epoch from `run.position`, its validation and its metrics record; afterwards the
    position is the next epoch's start."""
    cycle, epoch, step = run.position
    schedule = ctx.config.schedule
    t0, c0 = time.time(), compile_timer.snapshot()
    lr = cycle_lr(ctx.config, cycle, epoch)
    steps = _SearchSteps(ctx, run, programs, lr=lr, search=epoch >= schedule.grace[cycle - 1],
                         key=jax.random.fold_in(jax.random.fold_in(ctx.key, 100 + cycle), epoch))
    total = step + run.w_iter.steps_remaining(run.sizer.b)
    if ctx.config.max_steps_per_epoch:
        total = min(total, ctx.config.max_steps_per_epoch)
    step, done = run_epoch(
        steps, start=step, total=total, position=(cycle, epoch),
        label=f"cycle {cycle} epoch {epoch}", stop=ctx.stop, faults=ctx.faults,
        log_every=ctx.config.log_every)
    run.position = (cycle, epoch, step)
    if not done:
        save(ctx, run)
        raise SearchInterrupted(
            f"stopped by signal {ctx.stop.signal} at cycle {cycle}, epoch {epoch}, step "
            f"{step}; the state is saved: run the same command to resume")
    record = _epoch_record(ctx, run, programs, lr=lr, t0=t0, c0=c0)
    ctx.metrics.write(record)
    log.info("cycle %d epoch %d: lr %.4f train loss %.4f acc %.3f | val loss %.4f acc %.3f | "
             "%.1f s%s", cycle, epoch, lr, record["train_loss"], record["train_acc"],
             record["val_loss"], record["val_acc"], record["seconds"], _eta_text(ctx))
    run.position, run.hist = (cycle, epoch + 1, 0), {}


def _eta_text(ctx: SearchContext) -> str:
    """` | ETA cycle m:ss, search h:mm:ss` from the epochs in metrics.jsonl (main process)."""
    if not (ctx.metrics.enabled and os.path.exists(ctx.metrics_path)):
        return ""
    records = [r for r in read_metrics(ctx.metrics_path) if r.get("type") == "epoch"]
    left = eta.remaining(ctx.config.schedule, records)
    return f" | ETA cycle {duration(left[0])}, search {duration(left[1])}" if left else ""


def _epoch_record(ctx: SearchContext, run: SearchRun, programs: bilevel.StepPrograms, *,
                  lr: float, t0: float, c0: compile_timer.Tally) -> dict:
    """The epoch's metrics record (validated now); its times count from `t0` (wall clock) and
    `c0` (the compile tally), so they include the validation."""
    cycle, epoch, step = run.position
    state, hist = run.state, run.hist
    with announced(f"cycle {cycle} evaluation program", first_use(programs.eval_batch)):
        val_loss, val_acc = evaluate(
            lambda idx, mask: programs.eval_batch(state["params"], state["alphas"],
                                                  state["batch_stats"], ctx.images, ctx.labels,
                                                  idx, mask),
            ctx.eval_idx, ctx.config.eval_batch_size, ctx.placement)
    train = {k: float(np.mean(hist[k])) for k in _METRIC_KEYS if hist.get(k)}
    return {"type": "epoch", "cycle": cycle, "epoch": epoch, "lr": lr, **train,
            "val_loss": val_loss, "val_acc": val_acc,
            "batch_size": int(hist["batch_size"][-1]),
            "batch_size_mean": float(np.mean(hist["batch_size"])), "steps": step,
            "seconds": time.time() - t0,
            "compile_seconds": compile_timer.total_seconds() - c0.seconds,
            "compile": compile_timer.since(c0),
            "memory_usage": run.sizer.last_usage, **memory.memory_in_use(),
            "num_devices": ctx.placement.size,
            "grace": epoch < ctx.config.schedule.grace[cycle - 1],
            **({} if cycle_tau(ctx.config, cycle) is None
               else {"tau": cycle_tau(ctx.config, cycle)})}


class _SearchSteps:
    """One search step per call, for the epoch driver: an α step on the α half (after the
    grace epochs), then a weight step at the cycle's lr; an out-of-memory error steps the
    batch size back and retries. Per-step values go to `run.hist` as host floats (read back
    every 10 steps), so an epoch interrupted and resumed sums exactly as one run through."""

    def __init__(self, ctx: SearchContext, run: SearchRun, programs: bilevel.StepPrograms, *,
                 lr: float, search: bool, key: jax.Array):
        self.ctx, self.run, self.programs = ctx, run, programs
        self.lr, self.search, self.key = lr, search, key
        self.tau = tau_args(ctx.config, run.position[0])  # () unless relaxation=gumbel
        self.pending: list[dict] = []

    def __call__(self, i: int) -> tuple[bool, jax.Array, int]:
        """Step `i`; a step that compiles (the cycle's first, the first α step of unfused
        programs, a new batch size) is announced and timed."""
        b, cycle = self.run.sizer.b, self.run.position[0]
        if b not in self.programs.weight_grads.sizes():
            what = "step programs"
        elif self.search and b not in self.programs.alpha_grads.sizes():
            what = "α-gradient program"
        else:
            return self._call(i)
        with announced(f"cycle {cycle} {what} (batch {b})"):
            return self._call(i)

    def _call(self, i: int) -> tuple[bool, jax.Array, int]:
        ctx, run = self.ctx, self.run
        b = run.sizer.b
        a_idx = ctx.placement.shard_batch(run.a_iter.next_batch(b)) if self.search else None
        w_idx = ctx.placement.shard_batch(run.w_iter.next_batch(b))
        m, loss = self._step(a_idx, w_idx, jax.random.fold_in(self.key, i))
        self.pending.append(m)
        max_steps = ctx.config.max_steps_per_epoch
        done = bool(run.w_iter.epoch_done or (max_steps and i + 1 >= max_steps))
        run.sizer.after_step(self.programs, self._args_for)
        ctx.faults.after_step({"alphas": run.state["alphas"], "params": run.state["params"]})
        if len(self.pending) >= 10 or done or ctx.stop.signal is not None:
            self._flush(i + 1)
        return done, loss, m["batch_size"]

    def _step(self, a_idx, w_idx, step_key) -> tuple[dict, jax.Array]:
        ctx, run = self.ctx, self.run
        while True:
            b = run.sizer.b
            try:
                m = {"batch_size": b}
                state = run.state
                if self.search:
                    state, am = bilevel.alpha_step(
                        self.programs, state, images=ctx.images, labels=ctx.labels,
                        idx=a_idx[:b], key=jax.random.fold_in(step_key, 1), tau=self.tau)
                    m.update(alpha_loss=am["loss"], alpha_acc=am["acc"])
                    if "cost" in am:   # only with config.cost_penalty > 0
                        m["alpha_cost"] = am["cost"]
                state, wm = bilevel.weight_step(
                    self.programs, state, images=ctx.images, labels=ctx.labels, idx=w_idx[:b],
                    key=jax.random.fold_in(step_key, 0), lr=self.lr, tau=self.tau)
                break
            except Exception as err:  # noqa: BLE001 - only out-of-memory is handled
                run.sizer.on_oom(err)
        run.state = state
        m.update(train_loss=wm["loss"], train_acc=wm["acc"])
        return m, wm["loss"]

    def _args_for(self, size: int) -> tuple:
        state = self.run.state
        return (state["params"], state["alphas"], state["batch_stats"], self.ctx.images,
                self.ctx.labels, self.ctx.placement.shard_batch(np.zeros(size, np.int32)),
                jax.random.PRNGKey(0), *self.tau)

    def _flush(self, upto: int) -> None:
        if not self.pending:
            return
        values = jax.device_get(self.pending)
        cycle, epoch, _ = self.run.position
        for i, m in enumerate(values):
            for k, v in m.items():
                self.run.hist.setdefault(k, []).append(float(v))
            if not np.isfinite(m["train_loss"]):
                raise NonFiniteLossError(
                    f"non-finite loss ({float(m['train_loss'])}) at cycle {cycle}, epoch "
                    f"{epoch}, step {upto - len(values) + i}; lower config.lr_max or check the "
                    "data")
        self.pending.clear()


def end_cycle(ctx: SearchContext, run: SearchRun, net: Supernet) -> Genotype | None:
    """Prunes and replaces every edge's pool by the trained α. After the last cycle it derives
    the genotype, saves the finished search and returns the genotype; otherwise it carries the
    weights over to the next cycle's supernet with fresh α and saves its start."""
    config, schedule = ctx.config, ctx.config.schedule
    cycle = run.position[0]
    alphas_np = {t: [np.asarray(a) for a in run.state["alphas"][t]] for t in CELL_TYPES}
    final = cycle == ctx.n_cycles
    genotype = derive_genotype({"normal": net.normal, "reduce": net.reduce}, alphas_np,
                               rule=config.genotype_edge_score,
                               max_skips=config.genotype_max_skips) if final else None
    kind_probs, morph_record, scores = _weighted_selection(config, run, alphas_np)
    new_pools, report = step_pools(
        run.pools, alphas_np, keep=schedule.keep[cycle - 1], morphs=schedule.morphs[cycle - 1],
        final=final, space=ctx.space, rng=run.np_rng, max_tries=config.max_tries,
        revisit_after=config.revisit_after, kind_probs=kind_probs)
    ctx.metrics.write({"type": "cycle", "cycle": cycle, "report": report.to_json(),
                       "pools": new_pools.to_json(),
                       **_cycle_compile(ctx.metrics_path, cycle),
                       **morph_record})
    if scores is not None:
        run.morph_scores = morph_scores.with_births(scores, report)
    state_pools = run.pools
    run.position, run.pools, run.hist = (cycle + 1, 0, 0), new_pools, {}
    if final:
        save(ctx, run, finished=True, genotype=genotype.to_json(),
             state_pools=state_pools.to_json())
        return genotype
    lineage = update_lineage(run.lineage, report)
    variables = transfer_variables(
        {"params": run.state["params"], "batch_stats": run.state["batch_stats"]}, report,
        new_pools, layers=net.layers, key=jax.random.fold_in(ctx.key, 1000 + cycle),
        lineage=lineage if config.reinit_morphed_every_cycle else None)
    next_net = build_supernet(new_pools, config, ctx.info.num_classes, cycle=cycle + 1)
    alphas = init_alphas(jax.random.fold_in(ctx.key, 2000 + cycle), next_net.normal,
                         next_net.reduce, config.alpha_init_scale)
    variables = carry_into_depth(variables, net.layers, next_net.layers, lambda: init_variables(
        next_net, jax.random.fold_in(ctx.key, 3000 + cycle), ctx.info.image_shape, alphas))
    run.state, run.lineage = cycle_state(variables, alphas, ctx.h, ctx.placement), lineage
    ctx.metrics.write(stats_record(cycle + 1, new_pools, report, schedule))
    save(ctx, run)
    if ctx.stop.signal is not None:
        raise SearchInterrupted(
            f"stopped by signal {ctx.stop.signal} at the start of cycle {cycle + 1}; the state "
            "is saved: run the same command to resume")
    return None


def _weighted_selection(config: ml_collections.ConfigDict, run: SearchRun, alphas: dict
                        ) -> tuple[KindProbs | None, dict, morph_scores.MorphScores | None]:
    """With `morph_selection='weighted'`: (the kinds' probabilities for `step_pools`, the cycle
    record's `morph_scores` entry, the scores after judging this cycle's pending births by its
    pools and α). Uniform (the paper): (None, {}, None), nothing else changes."""
    if config.morph_selection != "weighted":
        return None, {}, None
    scores = morph_scores.observe(run.morph_scores or morph_scores.MorphScores(),
                                  {t: [e.ops for e in run.pools[t]] for t in CELL_TYPES}, alphas)
    opts = {"temperature": config.morph_temperature, "floor": config.morph_floor}
    return (morph_scores.selector(scores, **opts),
            {"morph_scores": morph_scores.record(scores, **opts)}, scores)


def _cycle_compile(metrics_path: str, cycle: int) -> dict:
    """`compile_seconds` and `compile` (seconds per program, cache hits and misses) summed over
    the epochs of `cycle` (in metrics.jsonl, so a resumed cycle counts the epochs before the
    interruption too)."""
    seconds, tally = 0.0, compile_timer.add({}, {})
    if os.path.exists(metrics_path):
        for r in read_metrics(metrics_path):
            if r.get("type") == "epoch" and r["cycle"] == cycle:
                seconds += r.get("compile_seconds", 0.0)
                tally = compile_timer.add(tally, r.get("compile", {}))
    return {"compile_seconds": float(seconds), "compile": tally}
