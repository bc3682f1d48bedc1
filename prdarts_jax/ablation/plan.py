"""The ablation as grid jobs: per variant, one search per seed and one retraining of each
search's genotype, built by the grid's own `build_grid` (so the local runner and the SLURM
arrays run them unchanged).

Workdirs under the ablation's root, per variant (its directory name, `Variant.slug`):
`<root>/<variant>/search/<space>/seed_<s>` and
`<root>/<variant>/train/<space>_s<s>/<dataset>/seed_<t>`; job names carry the variant's
directory in front so that they stay unique over the whole ablation.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Sequence

from prdarts_jax.ablation.variants import Variant
from prdarts_jax.grid.jobs import SEARCH, TRAIN, GridSpec, Job, build_grid

DEFAULT_TRAIN_CONFIG = "configs/train_short_{dataset}.py"
"""The short retraining (`{dataset}`: the search config's dataset)."""


@dataclasses.dataclass(frozen=True)
class AblationSpec:
    """What to run: `search_set` (key=value) goes into every search before the variant's own
    overrides; `train_set` into every retraining; each search is retrained once, with seed
    `train_seed`, on the search config's `dataset`."""

    root: str
    config: str
    space: str
    dataset: str
    variants: tuple[Variant, ...]
    seeds: tuple[int, ...] = (0,)
    search_set: tuple[str, ...] = ()
    train_config: str = DEFAULT_TRAIN_CONFIG
    train_set: tuple[str, ...] = ()
    train_seed: int = 0


def variant_grid(spec: AblationSpec, variant: Variant) -> GridSpec:
    """The grid of one variant: one space, the seeds, one dataset, one retraining seed."""
    overrides = tuple(f"{k}={v}" for k, v in variant.overrides)
    return GridSpec(root=os.path.join(spec.root, variant.slug), spaces=(spec.space,),
                    search_seeds=spec.seeds, train_seeds=(spec.train_seed,),
                    datasets=(spec.dataset,), search_config=spec.config,
                    train_config=spec.train_config,
                    search_set=(*spec.search_set, *overrides), train_set=spec.train_set)


def _renamed(jobs: Sequence[Job], prefix: str) -> list[Job]:
    searches: dict[str, Job] = {}
    out = []
    for job in jobs:
        after = searches.get(job.after.name) if job.after is not None else None
        new = dataclasses.replace(job, name=f"{prefix}/{job.name}", after=after)
        if job.stage == SEARCH:
            searches[job.name] = new
        out.append(new)
    return out


def build_plan(spec: AblationSpec) -> list[Job]:
    """Variant after variant: its searches, then their retrainings (dependency order, and a
    killed ablation leaves whole variants behind it). ValueError/FileNotFoundError (one line)
    from the grid on a bad space or a missing config file."""
    jobs: list[Job] = []
    for variant in spec.variants:
        jobs += _renamed(build_grid(variant_grid(spec, variant)), variant.slug)
    return jobs


def jobs_of(jobs: Sequence[Job], variant: Variant) -> dict[str, list[Job]]:
    """A variant's searches and retrainings, each in seed order."""
    mine = [j for j in jobs if j.name.split("/", 1)[0] == variant.slug]
    return {stage: [j for j in mine if j.stage == stage] for stage in (SEARCH, TRAIN)}
