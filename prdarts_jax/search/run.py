"""A search's moving parts — train state, pools, lineage, RNG, data iterators, batch size,
position and the open epoch's per-step values — and how they start, resume and are saved."""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

import jax
import numpy as np

from prdarts_jax.data import EpochIterator
from prdarts_jax.models.supernet import init_alphas
from prdarts_jax.runtime import compile_timer
from prdarts_jax.runtime.checkpoints import position_id
from prdarts_jax.search.batch_size.controller import BatchSizeState
from prdarts_jax.search.batch_size.sizer import BatchSizer
from prdarts_jax.search.boundary import Lineage
from prdarts_jax.search.context import SearchContext
from prdarts_jax.search.morph_scores import MorphScores
from prdarts_jax.search.pools import CellPools, initial_pools
from prdarts_jax.search.statistics import stats_record
from prdarts_jax.search.structure import build_supernet, cycle_state, init_variables

log = logging.getLogger("prdarts_jax")

Position = tuple[int, int, int]
"""(cycle from 1, epoch in the cycle, step in the epoch): where the search resumes."""


@dataclasses.dataclass
class SearchRun:
    """Everything a checkpoint holds besides the metrics file; `elapsed` and
    `compile_elapsed` count the wall and compile seconds of earlier processes, `hist` the
    per-step values of the epoch under way."""

    state: dict
    pools: CellPools
    lineage: Lineage
    np_rng: np.random.Generator
    w_iter: EpochIterator
    a_iter: EpochIterator
    sizer: BatchSizer
    position: Position
    hist: dict
    elapsed: float
    compile_elapsed: float = 0.0
    morph_scores: MorphScores | None = None   # morph_selection='weighted' only (morph_scores)

    def seconds(self, ctx: SearchContext) -> tuple[float, float]:
        """(wall, compile) seconds of the whole search so far, over all its processes."""
        return (self.elapsed + time.time() - ctx.clock,
                self.compile_elapsed + compile_timer.total_seconds() - ctx.compile_clock)

    def meta(self, ctx: SearchContext) -> dict:
        return {
            "position": list(self.position), "pools": self.pools.to_json(),
            "lineage": {t: {str(e): m for e, m in v.items()} for t, v in self.lineage.items()},
            "np_rng": self.np_rng.bit_generator.state, "w_iter": self.w_iter.state(),
            "a_iter": self.a_iter.state(), "hist": self.hist, "batch": self.sizer.to_json(),
            "metrics_offset": ctx.metrics.size(),
            **({} if self.morph_scores is None
               else {"morph_scores": self.morph_scores.to_json()}),
            **dict(zip(("elapsed", "compile_elapsed"), self.seconds(ctx)))}


def save(ctx: SearchContext, run: SearchRun, **extra: Any) -> None:
    """A checkpoint at `run.position` (extra keys go into its meta)."""
    ctx.ckpt.save(position_id(*run.position), run.state, {**run.meta(ctx), **extra})


def fresh_run(ctx: SearchContext) -> SearchRun:
    """Cycle 1 of a new search: the initial pools, fresh variables and α (nothing written)."""
    config = ctx.config
    np_rng = np.random.default_rng(config.seed)
    w_iter = EpochIterator(ctx.w_idx, np_rng.integers(2**63))
    a_iter = EpochIterator(ctx.a_idx, np_rng.integers(2**63))
    pools = initial_pools()
    net = build_supernet(pools, config, ctx.info.num_classes, cycle=1)
    alphas = init_alphas(jax.random.fold_in(ctx.key, 1), net.normal, net.reduce,
                         config.alpha_init_scale)
    variables = init_variables(net, jax.random.fold_in(ctx.key, 2), ctx.info.image_shape,
                               alphas)
    run = SearchRun(state=cycle_state(variables, alphas, ctx.h, ctx.placement), pools=pools,
                    lineage={}, np_rng=np_rng, w_iter=w_iter, a_iter=a_iter,
                    sizer=BatchSizer.initial(config), position=(1, 0, 0), hist={},
                    elapsed=0.0)
    return run


def start_metrics(ctx: SearchContext, run: SearchRun) -> None:
    """A fresh search's metrics file, opened by the first cycle's statistics."""
    ctx.metrics.truncate(0)
    ctx.metrics.write(stats_record(1, run.pools, None, ctx.config.schedule))


def restored_run(ctx: SearchContext, state: dict, meta: dict) -> SearchRun:
    """The run a checkpoint saved; metrics written after it are dropped."""
    np_rng = np.random.default_rng()
    np_rng.bit_generator.state = meta["np_rng"]
    batch = BatchSizeState.from_json(meta["batch"]) if meta.get("batch") else None
    run = SearchRun(
        state=state, pools=CellPools.from_json(meta["pools"]),
        lineage=_lineage_from_json(meta["lineage"]), np_rng=np_rng,
        w_iter=EpochIterator.from_state(ctx.w_idx, meta["w_iter"]),
        a_iter=EpochIterator.from_state(ctx.a_idx, meta["a_iter"]),
        sizer=BatchSizer(ctx.config, batch), position=tuple(meta["position"]),
        hist=meta["hist"], elapsed=meta["elapsed"],
        compile_elapsed=meta.get("compile_elapsed", 0.0),
        morph_scores=MorphScores.from_json(meta["morph_scores"]) if "morph_scores" in meta
        else None)
    ctx.metrics.truncate(meta["metrics_offset"])
    log.info("resumed from cycle %d, epoch %d, step %d", *run.position)
    return run


def _lineage_from_json(d: dict) -> Lineage:
    return {t: {int(e): {c: tuple(v) for c, v in m.items()} for e, m in edges.items()}
            for t, edges in d.items()}
