"""CLI: python -m prdarts_jax.grid --root runs/grid (--local | --slurm OUT_DIR) [--dry_run]

The paper's experiment grid as jobs: one search per search space and seed, then a retraining of
each search's genotype per dataset and seed (and, optionally, of published cells by name). Every
job is one call of an entry point (`prdarts_jax.search`, `prdarts_jax.train`) with its own
workdir under the root, so re-running the grid resumes or skips each job on its own:
`--local` runs the jobs one after another here (`grid_local`); `--slurm` writes sbatch job
arrays and the commands that chain them (`grid_slurm`).

Workdirs: `<root>/search/<space>/seed_<s>` and `<root>/train/<space>_s<s>/<dataset>/seed_<t>`
(`<root>/train/<NAME>/<dataset>/seed_<t>` for a published cell). A search is finished when its
workdir holds genotype.json, a retraining when it holds results.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from typing import Sequence

from prdarts_jax.cli import run_main
from prdarts_jax.errors import SearchInterrupted
from prdarts_jax.genotypes import PUBLISHED
from prdarts_jax.space import get_space

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


def _names(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in _names(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}"
                                         ) from None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m prdarts_jax.grid",
        description="Runs the paper's grid (searches over spaces × seeds, retrainings of each "
                    "result × seeds × datasets) here one job after another, or writes SLURM "
                    "job arrays for it.")
    p.add_argument("--root", required=True, help="directory of all the grid's workdirs")
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--local", action="store_true", help="run the jobs here, in order")
    mode.add_argument("--slurm", metavar="OUT_DIR",
                      help="write sbatch scripts and submit.sh into OUT_DIR")
    p.add_argument("--dry_run", action="store_true",
                   help="print the commands (--local) or the scripts (--slurm); run and write "
                        "nothing")
    g = p.add_argument_group("the grid")
    g.add_argument("--spaces", type=_names, default=("dl", "dr", "ur"),
                   help="search spaces, comma-separated (default dl,dr,ur; '' for none)")
    g.add_argument("--seeds", type=_ints, default=(0, 1, 2), help="search seeds (default 0,1,2)")
    g.add_argument("--train_seeds", type=_ints, default=None,
                   help="retraining seeds (default: --seeds)")
    g.add_argument("--datasets", type=_names, default=("cifar10", "cifar100"),
                   help="retraining datasets (default cifar10,cifar100)")
    g.add_argument("--published", type=_names, default=(),
                   help=f"also retrain these published cells ({', '.join(PUBLISHED)})")
    g.add_argument("--retrain_search_seeds", type=_ints, default=None,
                   help="retrain only the searches of these seeds (default: all)")
    g.add_argument("--stages", type=_names, default=STAGES,
                   help="search, train or both (default search,train)")
    g.add_argument("--search_config", default="configs/{space}.py",
                   help="search config file pattern (default configs/{space}.py)")
    g.add_argument("--train_config", default="configs/train_{dataset}.py",
                   help="retraining config file pattern (default configs/train_{dataset}.py)")
    g.add_argument("--search_set", action="append", default=[], metavar="KEY=VALUE",
                   help="config override for every search (repeatable)")
    g.add_argument("--train_set", action="append", default=[], metavar="KEY=VALUE",
                   help="config override for every retraining (repeatable)")
    g.add_argument("--python", default=sys.executable,
                   help="Python of the jobs (default: this one)")
    s = p.add_argument_group("SLURM (--slurm)")
    s.add_argument("--submit", action="store_true",
                   help="submit with sbatch, chaining retrainings after their search")
    s.add_argument("--partition", default=None)
    s.add_argument("--account", default=None)
    s.add_argument("--gres", default="gpu:1", help="per node (default gpu:1; '' for none)")
    s.add_argument("--cpus", type=int, default=8, help="CPUs per task (default 8)")
    s.add_argument("--mem", default=None, help="memory per node, e.g. 64G")
    s.add_argument("--search_time", default="2-00:00:00", help="default 2-00:00:00")
    s.add_argument("--train_time", default="2-00:00:00", help="default 2-00:00:00")
    s.add_argument("--nodes", type=int, default=1,
                   help="nodes per job; >1: one process per node with jax.distributed")
    s.add_argument("--port", type=int, default=29500,
                   help="coordinator port base; the job id mod 1000 is added (default 29500)")
    s.add_argument("--job_name", default="prdarts", help="job name prefix (default prdarts)")
    s.add_argument("--sbatch_option", action="append", default=[], metavar="--KEY=VALUE",
                   help="another #SBATCH line, e.g. --sbatch_option=--qos=high (repeatable)")
    return p


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    spec = GridSpec(
        root=args.root, spaces=args.spaces, search_seeds=args.seeds,
        train_seeds=args.seeds if args.train_seeds is None else args.train_seeds,
        datasets=args.datasets, published=args.published,
        retrain_search_seeds=args.retrain_search_seeds, stages=args.stages,
        search_config=args.search_config, train_config=args.train_config,
        search_set=tuple(args.search_set), train_set=tuple(args.train_set))

    def run() -> None:
        jobs = build_grid(spec)
        if args.local:
            from prdarts_jax.grid_local import run_local
            try:
                result = run_local(jobs, args.python, dry_run=args.dry_run)
            except KeyboardInterrupt:
                raise SearchInterrupted(
                    "interrupted: run the same command to continue the grid (finished jobs "
                    "are skipped, the interrupted one resumes)") from None
            sys.exit(result.exit_code)
        from prdarts_jax import grid_slurm
        options = grid_slurm.SlurmOptions(
            python=args.python, partition=args.partition, account=args.account,
            gres=args.gres, cpus=args.cpus, mem=args.mem,
            time={SEARCH: args.search_time, TRAIN: args.train_time}, nodes=args.nodes,
            port=args.port, job_name=args.job_name, extra=tuple(args.sbatch_option))
        grid_slurm.main(jobs, options, args.slurm, dry_run=args.dry_run,
                        submit_now=args.submit)

    run_main(run)


if __name__ == "__main__":
    main()
