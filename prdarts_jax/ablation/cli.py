"""CLI: python -m prdarts_jax.ablate --config configs/quick.py --workdir runs/ablate
[--variants uniform,weighted,gumbel,deepen,flops,skips] [--seeds 0] [--slurm OUT_DIR]

What each search variant buys: every variant × seed is a search through the grid's launcher
(`grid.local` here, one after another, or `grid.slurm` arrays), each found genotype is retrained
with a short retraining config, and one table (variant, seeds, search wall time and compile
share, α-half validation accuracy, retrained test accuracy mean ± std, params, MAdds, distinct
ops) is printed and written with a figure into the workdir. Running the same command again
continues: finished jobs are skipped, interrupted ones resume from their checkpoints.
`--table` only reads the workdirs and prints the table (after a SLURM run, say).
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from prdarts_jax.ablation.configs import (
    TRAIN_RESERVED,
    entry_configs,
    pairs_of,
    refuse_reserved,
    search_config,
    train_config,
)
from prdarts_jax.ablation.plan import DEFAULT_TRAIN_CONFIG, AblationSpec, build_plan
from prdarts_jax.ablation.variants import DEFAULT_VARIANTS, REGISTRY, parse_variants
from prdarts_jax.errors import ConfigError, SearchInterrupted
from prdarts_jax.grid.cli import add_slurm_arguments, ints, slurm_options
from prdarts_jax.grid.jobs import TRAIN, Job
from prdarts_jax.runtime.cli import run_main
from prdarts_jax.runtime.flags import ArgumentParser


def _parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python -m prdarts_jax.ablate", description=__doc__.split("\n\n")[1],
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="variants: " + "; ".join(f"{k}: {v[0]}"
                                                       for k, v in REGISTRY.items()))
    p.add_argument("--config", required=True, help="search config file, e.g. configs/quick.py")
    p.add_argument("--workdir", required=True, help="root of all the ablation's workdirs")
    p.add_argument("--variants", default=",".join(DEFAULT_VARIANTS),
                   help="comma-separated entries; an entry joins registry names and key=value "
                        "overrides with '+', e.g. 'uniform,weighted+skips,"
                        "schedule.epochs=(2,2,2,2)' (default: every registry variant)")
    p.add_argument("--seeds", type=ints, default=(0,), help="search seeds (default 0)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="set_",
                   help="search config override for every variant, before the variant's own "
                        "(repeatable)")
    p.add_argument("--train_config", default=DEFAULT_TRAIN_CONFIG,
                   help="retraining config file; {dataset} is the search's dataset (default "
                        f"{DEFAULT_TRAIN_CONFIG}; the paper's: configs/train_{{dataset}}.py)")
    p.add_argument("--train_set", action="append", default=[], metavar="KEY=VALUE",
                   help="retraining config override (repeatable)")
    p.add_argument("--train_seed", type=int, default=0, help="seed of every retraining")
    p.add_argument("--python", default=sys.executable, help="Python of the jobs")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--slurm", metavar="OUT_DIR",
                      help="write (and with --submit, submit) SLURM arrays instead of running")
    mode.add_argument("--table", action="store_true",
                      help="only print the table of what the workdirs hold")
    p.add_argument("--dry_run", action="store_true",
                   help="print the commands (or the SLURM scripts); run and write nothing "
                        "(not with --table)")
    add_slurm_arguments(p)
    return p


def spec_of(args: argparse.Namespace) -> AblationSpec:
    """The ablation the arguments ask for; ConfigError (one line) on a bad override or
    variant, or on an override of a field the ablation sets per job: every variant's search
    config is parsed and validated here."""
    set_pairs = pairs_of(args.set_, "--set")
    refuse_reserved(set_pairs, "--set")
    refuse_reserved(pairs_of(args.train_set, "--train_set"), "--train_set", TRAIN_RESERVED)
    base = search_config(args.config, set_pairs)
    variants = parse_variants(args.variants, entry_configs(args.config, set_pairs))
    for v in variants:
        search_config(args.config, (*set_pairs, *v.overrides), where=f"variant {v.name!r}")
    return AblationSpec(
        root=args.workdir, config=args.config, space=base.space.upper(), dataset=base.dataset,
        variants=tuple(variants), seeds=args.seeds, search_set=tuple(args.set_),
        train_config=args.train_config, train_set=tuple(args.train_set),
        train_seed=args.train_seed)


def check_retraining(jobs: Sequence[Job], train_set: Sequence[str]) -> None:
    """The retraining config of the first retraining job, parsed from its command line as the
    train CLI will parse it and validated (the other retrainings differ only in genotype,
    workdir and seed); ConfigError (one line) before any job starts."""
    train = next((job for job in jobs if job.stage == TRAIN), None)
    if train is not None:
        train_config(train.args, "--train_set" if train_set else "--train_config")


def _run(args: argparse.Namespace) -> int:
    from prdarts_jax.ablation.report import write_report
    if args.table and args.dry_run:
        raise ConfigError("--dry_run does not go with --table (which runs no job; it prints "
                          "and writes the table): drop --dry_run")
    spec = spec_of(args)
    jobs = build_plan(spec)
    check_retraining(jobs, spec.train_set)
    if args.slurm:
        from prdarts_jax.grid import slurm as grid_slurm
        grid_slurm.main(jobs, slurm_options(args), args.slurm, dry_run=args.dry_run,
                        submit_now=args.submit)
        print("# when the jobs are done: the same command with --table instead of --slurm")
        return 0
    code = 0
    if not args.table:
        from prdarts_jax.grid.local import run_local
        try:
            code = run_local(jobs, args.python, dry_run=args.dry_run).exit_code
        except KeyboardInterrupt:
            raise SearchInterrupted(
                "interrupted: run the same command to continue the ablation (finished jobs are "
                "skipped, the interrupted one resumes)") from None
    if not args.dry_run:
        write_report(spec.root, jobs, spec.variants, spec.seeds)
    return code


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    code = 0

    def run() -> None:
        nonlocal code
        code = _run(args)

    run_main(run)
    sys.exit(code)
