"""Runs the grid's jobs on this machine, one after another, in dependency order.

A finished job (its done file exists) is skipped, so running the grid again continues where it
stopped; an unfinished one is started again and the entry point resumes it from its
checkpoints. A job that fails does not stop the grid: the retrainings of a failed search are
skipped, everything else still runs, and the exit code says that something failed.
"""

from __future__ import annotations

import dataclasses
import shlex
import subprocess
from typing import Callable, Sequence

from prdarts_jax.grid.jobs import Job

Runner = Callable[[Sequence[str]], int]
"""Runs one command to its end and returns its exit code."""


def run_subprocess(command: Sequence[str]) -> int:
    """The default runner: the job's output goes to this terminal. On Ctrl-C the job (which got
    the signal too) is given time to save its state, then KeyboardInterrupt propagates."""
    proc = subprocess.Popen(list(command))
    try:
        return proc.wait()
    except KeyboardInterrupt:
        try:
            proc.wait()
        except KeyboardInterrupt:
            proc.kill()
        raise


@dataclasses.dataclass
class LocalResult:
    """The names of the jobs by outcome."""

    ran: list[str] = dataclasses.field(default_factory=list)
    finished_before: list[str] = dataclasses.field(default_factory=list)
    failed: list[str] = dataclasses.field(default_factory=list)
    blocked: list[str] = dataclasses.field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 1 if self.failed or self.blocked else 0


def run_local(jobs: Sequence[Job], python: str, *, runner: Runner = run_subprocess,
              dry_run: bool = False, out: Callable[[str], None] = print) -> LocalResult:
    """Runs the unfinished jobs in order. `dry_run` prints the commands as a shell script
    instead (finished jobs as comments); `runner` is injectable for tests."""
    result = LocalResult()
    n = len(jobs)
    if not jobs:
        out("# the grid is empty: nothing to do")
    for i, job in enumerate(jobs, 1):
        command = job.command(python)
        if job.finished():
            result.finished_before.append(job.name)
            out(f"# [{i}/{n}] finished before, skipped: {job.name}")
            continue
        if dry_run:
            out(shlex.join(command))
            continue
        if job.after is not None and not job.after.finished():
            result.blocked.append(job.name)
            out(f"# [{i}/{n}] blocked: {job.name} needs {job.after.done_file}, which "
                f"{job.after.name} has not written")
            continue
        out(f"# [{i}/{n}] running {job.name}: {shlex.join(command)}")
        code = runner(command)
        if code == 0 and job.finished():
            result.ran.append(job.name)
        else:
            result.failed.append(job.name)
            why = f"exit code {code}" if code else f"exit code 0 but no {job.done_file}"
            out(f"# [{i}/{n}] failed: {job.name} ({why})")
    if not dry_run and jobs:
        out(f"# grid: {len(result.ran)} ran, {len(result.finished_before)} finished before, "
            f"{len(result.failed)} failed, {len(result.blocked)} blocked")
    return result
