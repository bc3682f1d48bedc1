"""The grid's jobs: one search per search space and seed, then a retraining of each search's
genotype per dataset and seed (and, optionally, of published cells by name).

Workdirs: `<root>/search/<space>/seed_<s>` and `<root>/train/<space>_s<s>/<dataset>/seed_<t>`
(`<root>/train/<NAME>/<dataset>/seed_<t>` for a published cell). A search is finished when its
workdir holds genotype.json, a retraining when it holds results.json.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Sequence

from prdarts_jax.space.genotypes import PUBLISHED
from prdarts_jax.space.spaces import get_space

SEARCH, TRAIN = "search", "train"
STAGES = (SEARCH, TRAIN)
DONE_FILE = {SEARCH: "genotype.json", TRAIN: "results.json"}
"""The file an entry point writes last, when its run is complete."""


@dataclasses.dataclass(frozen=True)
class Job:
    """One run of an entry point in its own workdir.

    `name` is the workdir relative to the grid's root (unique in a grid); `args` follow the
    Python executable (`-m prdarts_jax.search ...`); `after` is the search whose genotype a
    retraining needs (None for searches and for published cells)."""

    stage: str
    name: str
    workdir: str
    args: tuple[str, ...]
    after: Job | None = None

    @property
    def done_file(self) -> str:
        return os.path.join(self.workdir, DONE_FILE[self.stage])

    def finished(self) -> bool:
        return os.path.exists(self.done_file)

    def command(self, python: str) -> list[str]:
        return [python, *self.args]


@dataclasses.dataclass(frozen=True)
class GridSpec:
    """What to run. Config patterns hold `{space}` (lower case) or `{dataset}`; a pattern
    without its placeholder gets `--config.space=` / `--config.dataset=` instead. `search_set`
    and `train_set` are extra `key=value` config overrides for every job of that stage."""

    root: str
    spaces: tuple[str, ...] = ("DL", "DR", "UR")
    search_seeds: tuple[int, ...] = (0, 1, 2)
    train_seeds: tuple[int, ...] = (0, 1, 2)
    datasets: tuple[str, ...] = ("cifar10", "cifar100")
    published: tuple[str, ...] = ()
    retrain_search_seeds: tuple[int, ...] | None = None   # None: retrain every search
    stages: tuple[str, ...] = STAGES
    search_config: str = "configs/{space}.py"
    train_config: str = "configs/train_{dataset}.py"
    search_set: tuple[str, ...] = ()
    train_set: tuple[str, ...] = ()


def _config_file(pattern: str, flag: str, needed: bool, **fields: str) -> str:
    try:
        path = pattern.format(**fields)
    except (KeyError, IndexError, ValueError):
        raise ValueError(f"{flag}={pattern!r} may hold only the placeholder "
                         f"{{{', '.join(fields)}}}") from None
    if needed and not os.path.isfile(path):
        raise FileNotFoundError(f"config file {path} not found (from {flag}={pattern!r}); run "
                                f"from the repository root or pass {flag}")
    return path


def _overrides(pairs: Sequence[str], flag: str) -> list[str]:
    out = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"{flag} {pair!r} must be key=value (e.g. {flag} epochs=10)")
        out.append(f"--config.{key}={value}")
    return out


def _placeholder(pattern: str, field: str, value: str) -> list[str]:
    return [] if "{" + field + "}" in pattern else [f"--config.{field}={value}"]


def _check(spec: GridSpec) -> None:
    for space in spec.spaces:
        get_space(space)
    for name in spec.published:
        if name.upper() not in PUBLISHED:
            raise ValueError(f"unknown published cell {name!r}; use some of "
                             f"{', '.join(PUBLISHED)}")
    unknown = set(spec.stages) - set(STAGES)
    if unknown:
        raise ValueError(f"unknown stage(s) {sorted(unknown)}; use some of {', '.join(STAGES)}")
    if spec.retrain_search_seeds is not None:
        missing = set(spec.retrain_search_seeds) - set(spec.search_seeds)
        if missing:
            raise ValueError(f"--retrain_search_seeds {sorted(missing)} are not search seeds "
                             f"({', '.join(map(str, spec.search_seeds))})")


def build_grid(spec: GridSpec) -> list[Job]:
    """The jobs of the grid in dependency order: searches, then retrainings (each search's
    datasets and seeds in turn, then the published cells). Raises ValueError/FileNotFoundError
    with one line on a bad name or a missing config file."""
    _check(spec)
    searches: list[tuple[str, int, Job]] = []
    for space in spec.spaces:
        space = space.upper()
        config = _config_file(spec.search_config, "--search_config", SEARCH in spec.stages,
                              space=space.lower())
        for seed in spec.search_seeds:
            name = f"search/{space.lower()}/seed_{seed}"
            workdir = os.path.join(spec.root, name)
            args = ("-m", "prdarts_jax.search", "--config", config, "--workdir", workdir,
                    f"--config.seed={seed}",
                    *_placeholder(spec.search_config, "space", space),
                    *_overrides(spec.search_set, "--search_set"))
            searches.append((space, seed, Job(SEARCH, name, workdir, args)))
    retrain = spec.retrain_search_seeds
    sources = [(f"{space.lower()}_s{seed}", job.done_file, job) for space, seed, job in searches
               if retrain is None or seed in retrain]
    sources += [(name.upper(), name.upper(), None) for name in spec.published]
    trainings: list[Job] = []
    for arch, genotype, after in sources:
        for dataset in spec.datasets:
            config = _config_file(spec.train_config, "--train_config", TRAIN in spec.stages,
                                  dataset=dataset)
            for seed in spec.train_seeds:
                name = f"train/{arch}/{dataset}/seed_{seed}"
                workdir = os.path.join(spec.root, name)
                args = ("-m", "prdarts_jax.train", "--config", config,
                        f"--config.genotype={genotype}", "--workdir", workdir,
                        f"--config.seed={seed}",
                        *_placeholder(spec.train_config, "dataset", dataset),
                        *_overrides(spec.train_set, "--train_set"))
                trainings.append(Job(TRAIN, name, workdir, args, after))
    return (([job for _, _, job in searches] if SEARCH in spec.stages else [])
            + (trainings if TRAIN in spec.stages else []))
