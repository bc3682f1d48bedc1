"""One PR-DARTS search: start or resume, then cycles of bilevel training with prune-and-replace
between them, until the genotype.

`run_search(config, workdir)` is the library entry point behind `python -m prdarts_jax.search`;
`cycle.py` holds one cycle, `run.py` what a checkpoint saves, `workdir.py` the files around it.
"""

from __future__ import annotations

import logging
import os

import ml_collections

from prdarts_jax.data import dataset_info
from prdarts_jax.models import formulations
from prdarts_jax.runtime import compile_cache, interrupts, parallel
from prdarts_jax.runtime.checkpoints import Checkpointer
from prdarts_jax.runtime.interrupts import NO_FAULTS, FaultHook
from prdarts_jax.runtime.metrics import read_metrics
from prdarts_jax.search import workdir as workdir_files
from prdarts_jax.search.config import check_devices, hyper, search_space, validate
from prdarts_jax.search.context import METRICS_FILE, SearchContext, search_context
from prdarts_jax.search.cycle import end_cycle, train_cycle
from prdarts_jax.search.run import SearchRun, fresh_run, restored_run, start_metrics
from prdarts_jax.search.structure import build_supernet, restore_target
from prdarts_jax.search.summary import finished_record, summary_text
from prdarts_jax.space.genotypes import Genotype, load_genotype

log = logging.getLogger("prdarts_jax")


def run_search(config: ml_collections.ConfigDict, workdir: str, *,
               faults: FaultHook = NO_FAULTS) -> Genotype | None:
    """Runs the whole search, resuming from the workdir's latest checkpoint if there is one.

    Writes config, metrics, checkpoints and the genotype into `workdir`; returns the genotype,
    or None if the workdir already held a finished search. `faults` is the resume tests' hook.
    """
    validate(config)
    placement = check_devices(config)
    compile_cache.enable(config.compilation_cache_dir)
    with (formulations.use_impls(config.depthwise_impl, config.pool_impl, config.bn_impl,
                                 config.sgd_impl, config.edge_sum_impl),
          interrupts.StopFlag() as stop):
        return _search(config, workdir, stop=stop, faults=faults, placement=placement)


def _search(config: ml_collections.ConfigDict, workdir: str, *, stop: interrupts.StopFlag,
            faults: FaultHook, placement: parallel.Placement) -> Genotype | None:
    space, info, h = search_space(config), dataset_info(config.dataset), hyper(config)
    if workdir_files.is_finished(workdir):
        workdir_files.check_finished(config, workdir)
        log.info("workdir %s already holds a finished search (genotype.json); nothing to do",
                 workdir)
        _repeat_closing(workdir)
        return None
    workdir_files.check_workdir(config, workdir)
    ckpt, ctx = Checkpointer(workdir, faults=faults), None
    try:
        restored = ckpt.restore_latest(
            lambda meta: restore_target(meta, config, info, h, placement))
        ctx = search_context(config, workdir, space=space, info=info, h=h, placement=placement,
                             stop=stop, faults=faults, ckpt=ckpt)
        if restored is None:
            run = fresh_run(ctx)
            workdir_files.start_workdir(workdir)
            workdir_files.write_config(config, workdir)
            start_metrics(ctx, run)
            return _cycles(ctx, run)
        workdir_files.write_config(config, workdir)
        state, meta = restored
        run = restored_run(ctx, state, meta)
        if meta.get("finished"):
            return _finished(ctx, run, Genotype.from_json(meta["genotype"]))
        return _cycles(ctx, run)
    finally:
        ckpt.close()
        if ctx is not None:
            ctx.metrics.close()


def _cycles(ctx: SearchContext, run: SearchRun) -> Genotype | None:
    """Trains and ends cycles from where `run` stands until the last one has ended."""
    while run.position[0] <= ctx.n_cycles:
        net = build_supernet(run.pools, ctx.config, ctx.info.num_classes, cycle=run.position[0])
        train_cycle(ctx, run, net)
        genotype = end_cycle(ctx, run, net)
        if genotype is not None:
            return _finished(ctx, run, genotype)
    return None


def _finished(ctx: SearchContext, run: SearchRun, genotype: Genotype) -> Genotype:
    """The `finished` metrics record, then the files of a finished search (genotype.json, the
    marker of a finished workdir, last) and the closing lines. A resume from the final
    checkpoint, whatever was cut short after it, comes here again."""
    record = None
    if ctx.metrics.enabled:
        seconds, compile_seconds = run.seconds(ctx)
        epochs = [r for r in read_metrics(ctx.metrics_path) if r.get("type") == "epoch"]
        record = finished_record(epochs, seconds=seconds, compile_seconds=compile_seconds)
        ctx.metrics.write(record)
    workdir_files.write_finished(ctx.workdir, genotype, run.pools)
    if record is not None:
        log.info("%s", summary_text(record, genotype, ctx.workdir))
    return genotype


def _repeat_closing(workdir: str) -> None:
    """A finished workdir run again: its result and the next commands once more."""
    path = os.path.join(workdir, METRICS_FILE)
    records = [r for r in read_metrics(path) if r.get("type") == "finished"] \
        if os.path.exists(path) else []
    if records:
        genotype = load_genotype(os.path.join(workdir, workdir_files.GENOTYPE_FILE))
        log.info("%s", summary_text(records[-1], genotype, workdir))
