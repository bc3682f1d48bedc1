"""CLI: python -m prdarts_jax.grid --root runs/grid (--local | --slurm OUT_DIR) [--dry_run]

The paper's experiment grid as jobs: one search per search space and seed, then a retraining of
each search's genotype per dataset and seed (and, optionally, of published cells by name). Every
job is one call of an entry point (`prdarts_jax.search`, `prdarts_jax.train`) with its own
workdir under the root, so re-running the grid resumes or skips each job on its own:
`--local` runs the jobs one after another here (`grid.local`); `--slurm` writes sbatch job
arrays and the commands that chain them (`grid.slurm`).

Workdirs: `<root>/search/<space>/seed_<s>` and `<root>/train/<space>_s<s>/<dataset>/seed_<t>`
(`<root>/train/<NAME>/<dataset>/seed_<t>` for a published cell). A search is finished when its
workdir holds genotype.json, a retraining when it holds results.json.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from prdarts_jax.errors import SearchInterrupted
from prdarts_jax.grid.jobs import SEARCH, STAGES, TRAIN, GridSpec, build_grid
from prdarts_jax.runtime.cli import run_main
from prdarts_jax.runtime.flags import ArgumentParser
from prdarts_jax.space.genotypes import PUBLISHED


def _names(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


def ints(text: str) -> tuple[int, ...]:
    """`--seeds 0,1,2` -> (0, 1, 2); argparse's type error otherwise (also the ablation's)."""
    try:
        return tuple(int(v) for v in _names(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}"
                                         ) from None


def add_slurm_arguments(p: argparse.ArgumentParser) -> None:
    """The `--slurm` options (resources, `--submit`); also the ablation's."""
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


def slurm_options(args: argparse.Namespace):
    """`grid.slurm.SlurmOptions` from the options of `add_slurm_arguments`."""
    from prdarts_jax.grid import slurm as grid_slurm
    return grid_slurm.SlurmOptions(
        python=args.python, partition=args.partition, account=args.account,
        gres=args.gres, cpus=args.cpus, mem=args.mem,
        time={SEARCH: args.search_time, TRAIN: args.train_time}, nodes=args.nodes,
        port=args.port, job_name=args.job_name, extra=tuple(args.sbatch_option))


def _parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
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
    g.add_argument("--seeds", type=ints, default=(0, 1, 2), help="search seeds (default 0,1,2)")
    g.add_argument("--train_seeds", type=ints, default=None,
                   help="retraining seeds (default: --seeds)")
    g.add_argument("--datasets", type=_names, default=("cifar10", "cifar100"),
                   help="retraining datasets (default cifar10,cifar100)")
    g.add_argument("--published", type=_names, default=(),
                   help=f"also retrain these published cells ({', '.join(PUBLISHED)})")
    g.add_argument("--retrain_search_seeds", type=ints, default=None,
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
    add_slurm_arguments(p)
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
            from prdarts_jax.grid.local import run_local
            try:
                result = run_local(jobs, args.python, dry_run=args.dry_run)
            except KeyboardInterrupt:
                raise SearchInterrupted(
                    "interrupted: run the same command to continue the grid (finished jobs "
                    "are skipped, the interrupted one resumes)") from None
            sys.exit(result.exit_code)
        from prdarts_jax.grid import slurm as grid_slurm
        grid_slurm.main(jobs, slurm_options(args), args.slurm, dry_run=args.dry_run,
                        submit_now=args.submit)

    run_main(run)

