"""SLURM job arrays for the grid: one sbatch script per stage, and the commands that chain them.

`search.sbatch` and `train.sbatch` each hold every job of their stage, selected by
SLURM_ARRAY_TASK_ID (the job's position in its stage); a task whose workdir is already finished
exits at once. Only unfinished jobs are submitted: the searches as one array, and the
retrainings of each search as one array that waits for that search's task
(`--dependency=afterok:<search array>_<task>`); retrainings of published cells and of finished
searches wait for nothing. `submit.sh` holds these sbatch commands; `--submit` runs the same
ones from Python. Submitting again after a failure or a time-out re-submits only the unfinished
jobs, and the entry points resume them from their checkpoints.

With `nodes > 1` each job is one process per node under `srun`; the script exports
PRDARTS_COORDINATOR (the first node of the job, and a port), PRDARTS_NUM_PROCESSES and, per
process, PRDARTS_PROCESS_ID, which the entry points hand to `jax.distributed.initialize`.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import subprocess
import sys
from typing import Callable, Sequence

from prdarts_jax.grid.jobs import SEARCH, STAGES, TRAIN, Job

SCRIPT = {stage: f"{stage}.sbatch" for stage in STAGES}
SUBMIT_SCRIPT = "submit.sh"
LOG_DIR = "logs"


@dataclasses.dataclass(frozen=True)
class SlurmOptions:
    """Resources of every job (per node) and how to start Python."""

    python: str = sys.executable
    partition: str | None = None
    account: str | None = None
    gres: str | None = "gpu:1"
    cpus: int = 8
    mem: str | None = None
    time: dict[str, str] = dataclasses.field(
        default_factory=lambda: {SEARCH: "2-00:00:00", TRAIN: "2-00:00:00"})
    nodes: int = 1
    port: int = 29500
    job_name: str = "prdarts"
    extra: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Submission:
    """One sbatch call: `array` (e.g. "0-5,7") of a stage's script, after the search task
    `after` (its index in the search array; None: no dependency)."""

    stage: str
    array: str
    after: int | None
    label: str


def array_spec(indices: Sequence[int]) -> str:
    """SLURM's --array syntax for sorted indices: [0, 1, 2, 5, 7, 8] -> "0-2,5,7-8"."""
    parts: list[str] = []
    start = prev = None
    for i in list(indices) + [None]:
        if prev is not None and i == prev + 1:
            prev = i
            continue
        if start is not None:
            parts.append(str(start) if start == prev else f"{start}-{prev}")
        start = prev = i
    return ",".join(parts)


def _by_stage(jobs: Sequence[Job]) -> dict[str, list[Job]]:
    return {stage: [j for j in jobs if j.stage == stage] for stage in STAGES}


def plan(jobs: Sequence[Job]) -> list[Submission]:
    """The sbatch calls for the unfinished jobs, searches first. Raises ValueError when a
    retraining needs a search that is neither finished nor part of the grid."""
    stages = _by_stage(jobs)
    search_index = {job.name: i for i, job in enumerate(stages[SEARCH])}
    out = []
    todo = [i for i, job in enumerate(stages[SEARCH]) if not job.finished()]
    if todo:
        out.append(Submission(SEARCH, array_spec(todo), None, f"{len(todo)} searches"))
    groups: dict[str | None, list[int]] = {}
    for i, job in enumerate(stages[TRAIN]):
        if not job.finished():
            groups.setdefault(job.after and job.after.name, []).append(i)
    for after, indices in groups.items():
        label = f"{len(indices)} retrainings of {after or 'published cells'}"
        dep = None
        if after is not None and not stages[TRAIN][indices[0]].after.finished():
            if after not in search_index:
                raise ValueError(f"the retrainings of {after} need its genotype.json, but that "
                                 "search is neither finished nor in this grid (--stages)")
            dep = search_index[after]
        out.append(Submission(TRAIN, array_spec(indices), dep, label))
    return out


def _header(stage: str, options: SlurmOptions, log_dir: str) -> list[str]:
    lines = [f"--job-name={options.job_name}-{stage}", f"--nodes={options.nodes}",
             "--ntasks-per-node=1", f"--cpus-per-task={options.cpus}",
             f"--time={options.time[stage]}", f"--output={log_dir}/%x-%A_%a.out"]
    for flag, value in (("gres", options.gres), ("partition", options.partition),
                        ("account", options.account), ("mem", options.mem)):
        if value:
            lines.append(f"--{flag}={value}")
    return [f"#SBATCH {line}" for line in [*lines, *options.extra]]


def _launch(options: SlurmOptions) -> list[str]:
    if options.nodes == 1:
        return ['exec "$PYTHON" "${args[@]}"']
    return [
        "# one process per node; the entry point initialises jax.distributed from these",
        # sed reads all of scontrol's output: `head` would end the pipe early and, under
        # pipefail, a SIGPIPE'd scontrol would fail the job
        'coordinator=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | sed -n 1p)',
        f'export PRDARTS_COORDINATOR="$coordinator:$(({options.port} + SLURM_JOB_ID % 1000))"',
        'export PRDARTS_NUM_PROCESSES="$SLURM_NTASKS"',
        'exec srun --kill-on-bad-exit=1 --cpus-per-task="$SLURM_CPUS_PER_TASK" bash -c '
        "'export PRDARTS_PROCESS_ID=\"$SLURM_PROCID\"; exec \"$@\"' "
        'bash "$PYTHON" "${args[@]}"',
    ]


def render_script(stage: str, jobs: Sequence[Job], options: SlurmOptions, log_dir: str,
                  repo_dir: str) -> str:
    """The sbatch script of one stage: task i runs `jobs[i]` unless its workdir is finished."""
    q = shlex.quote
    lines = ["#!/bin/bash",
             f"# PR-DARTS grid, {stage} stage: {len(jobs)} jobs, one per array task.",
             "# Written by python -m prdarts_jax.grid; submit it with the commands of "
             f"{SUBMIT_SCRIPT} (they pass --array).",
             *_header(stage, options, log_dir),
             "set -euo pipefail",
             f"cd {q(repo_dir)}",
             f"PYTHON=${{PYTHON:-{q(options.python)}}}",
             "export PYTHONUNBUFFERED=1",
             'task=${SLURM_ARRAY_TASK_ID:?"submit this script as a job array (sbatch '
             f'--array=...; see {SUBMIT_SCRIPT})"}}',
             'case "$task" in']
    for i, job in enumerate(jobs):
        lines += [f"  {i})  # {job.name}",
                  f"    done_file={q(job.done_file)}",
                  f"    args=({shlex.join(job.args)}) ;;"]
    lines += [f'  *) echo "error: no task $task in this array (0-{len(jobs) - 1})" >&2; '
              "exit 2 ;;",
              "esac",
              'if [ -e "$done_file" ]; then',
              '  echo "finished before ($done_file exists); nothing to do"',
              "  exit 0",
              "fi",
              *_launch(options)]
    return "\n".join(lines) + "\n"


def _sbatch_args(sub: Submission, scripts: dict[str, str], search_id: str | None
                 ) -> list[str]:
    dependency = ([f"--dependency=afterok:{search_id}_{sub.after}"] if sub.after is not None
                  else [])
    return ["sbatch", "--parsable", f"--array={sub.array}", *dependency, scripts[sub.stage]]


def render_submit(subs: Sequence[Submission], scripts: dict[str, str], log_dir: str) -> str:
    """submit.sh: the sbatch calls of `plan`, the retrainings chained to their search task."""
    lines = ["#!/bin/bash",
             "# Submits the unfinished jobs of the PR-DARTS grid (written by python -m "
             "prdarts_jax.grid).",
             "set -euo pipefail",
             f"mkdir -p {shlex.quote(log_dir)}"]
    for sub in subs:
        command = " ".join(f'"{a}"' if "${search}" in a else shlex.quote(a)
                           for a in _sbatch_args(sub, scripts, "${search}"))
        if sub.stage == SEARCH:
            lines += [f"search=$({command})", 'search=${search%%;*}',
                      f'echo "{sub.label}: job array $search"']
        else:
            lines += [f'echo "{sub.label}: job array $({command})"']
    return "\n".join(lines) + "\n"


def _run_sbatch(args: Sequence[str]) -> str:
    try:
        done = subprocess.run(list(args), capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise FileNotFoundError("sbatch not found: --submit needs SLURM's sbatch on PATH "
                                "(without --submit the scripts are only written)") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise ValueError(f"{shlex.join(args)} failed: {last}")
    return done.stdout


def submit(subs: Sequence[Submission], scripts: dict[str, str],
           sbatch: Callable[[Sequence[str]], str] = _run_sbatch,
           out: Callable[[str], None] = print) -> list[str]:
    """Submits `subs` in order; returns the job ids. `sbatch` (injectable for tests) runs one
    sbatch command and returns its output (`--parsable`: "<id>" or "<id>;<cluster>")."""
    ids: list[str] = []
    search_id = None
    for sub in subs:
        args = _sbatch_args(sub, scripts, search_id)
        job_id = sbatch(args).strip().split(";")[0]
        if not job_id.isdigit():
            raise ValueError(f"{shlex.join(args)} printed {job_id!r}, not a job id")
        if sub.stage == SEARCH:
            search_id = job_id
        ids.append(job_id)
        out(f"{sub.label}: job array {job_id}")
    return ids


def main(jobs: Sequence[Job], options: SlurmOptions, out_dir: str, *, dry_run: bool = False,
         submit_now: bool = False, sbatch: Callable[[Sequence[str]], str] = _run_sbatch,
         out: Callable[[str], None] = print) -> list[str]:
    """Writes the scripts and submit.sh into `out_dir` (prints them with `dry_run`) and, with
    `submit_now`, submits. Returns the job ids submitted."""
    if options.nodes < 1:
        raise ValueError(f"--nodes={options.nodes} must be >= 1")
    out_dir = os.path.abspath(out_dir)
    log_dir = os.path.join(out_dir, LOG_DIR)
    stages = _by_stage(jobs)
    scripts = {stage: os.path.join(out_dir, SCRIPT[stage]) for stage in STAGES if stages[stage]}
    files = {scripts[stage]: render_script(stage, stages[stage], options, log_dir, os.getcwd())
             for stage in scripts}
    subs = plan(jobs)
    files[os.path.join(out_dir, SUBMIT_SCRIPT)] = render_submit(subs, scripts, log_dir)
    if dry_run:
        for path, text in files.items():
            out(f"# ===== {path}\n{text}")
        return []
    os.makedirs(log_dir, exist_ok=True)
    for path, text in files.items():
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o755)
    out(f"# wrote {', '.join(files)}")
    if not subs:
        out(f"# all {len(jobs)} jobs are finished: nothing to submit")
        return []
    if not submit_now:
        out(f"# submit with: bash {shlex.quote(os.path.join(out_dir, SUBMIT_SCRIPT))}")
        return []
    return submit(subs, scripts, sbatch, out)
