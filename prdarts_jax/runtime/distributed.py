"""Multi-host start-up: `jax.distributed.initialize` when the environment describes a job.

The launchers export PRDARTS_COORDINATOR (host:port), PRDARTS_NUM_PROCESSES and
PRDARTS_PROCESS_ID; without them, a SLURM step with more than one task is recognised from
SLURM_NTASKS / SLURM_PROCID and the coordinator is the first node of the job on port
PRDARTS_COORDINATOR_PORT (default 12355). A single process initialises nothing.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import subprocess
from typing import Mapping

log = logging.getLogger("prdarts_jax")

DEFAULT_PORT = 12355


@dataclasses.dataclass(frozen=True)
class ClusterSpec:
    coordinator: str
    num_processes: int
    process_id: int


def cluster_spec(env: Mapping[str, str] | None = None) -> ClusterSpec | None:
    """The job's layout from the environment, or None for a single-process run."""
    env = os.environ if env is None else env
    if "PRDARTS_NUM_PROCESSES" in env:
        spec = ClusterSpec(_required(env, "PRDARTS_COORDINATOR"),
                           _int(env, "PRDARTS_NUM_PROCESSES"), _int(env, "PRDARTS_PROCESS_ID"))
    elif int(env.get("SLURM_NTASKS", "1")) > 1 and "SLURM_PROCID" in env:
        port = env.get("PRDARTS_COORDINATOR_PORT", str(DEFAULT_PORT))
        host = env.get("PRDARTS_COORDINATOR", "").split(":")[0] or _first_slurm_node(env)
        spec = ClusterSpec(f"{host}:{port}", _int(env, "SLURM_NTASKS"),
                           _int(env, "SLURM_PROCID"))
    else:
        return None
    if spec.num_processes < 1 or not 0 <= spec.process_id < spec.num_processes:
        raise ValueError(f"process id {spec.process_id} out of range for "
                         f"{spec.num_processes} processes: check PRDARTS_PROCESS_ID / "
                         "PRDARTS_NUM_PROCESSES")
    return None if spec.num_processes == 1 else spec


def maybe_initialize(env: Mapping[str, str] | None = None) -> ClusterSpec | None:
    """Initialises jax.distributed for a multi-process job; must run before any JAX use."""
    spec = cluster_spec(env)
    if spec is not None:
        import jax
        jax.distributed.initialize(spec.coordinator, spec.num_processes, spec.process_id)
        log.info("process %d of %d (coordinator %s)", spec.process_id, spec.num_processes,
                 spec.coordinator)
    return spec


def _required(env: Mapping[str, str], key: str) -> str:
    if not env.get(key):
        raise ValueError(f"{key} is not set: a multi-process job needs it (host:port of "
                         "process 0)")
    return env[key]


def _int(env: Mapping[str, str], key: str) -> int:
    try:
        return int(env[key])
    except (KeyError, ValueError):
        raise ValueError(f"{key}={env.get(key)!r} must be an integer") from None


def _first_slurm_node(env: Mapping[str, str]) -> str:
    nodelist = env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST")
    if not nodelist:
        raise ValueError("SLURM_JOB_NODELIST is not set: set PRDARTS_COORDINATOR=host:port")
    try:
        out = subprocess.run(["scontrol", "show", "hostnames", nodelist], check=True,
                             capture_output=True, text=True).stdout.split()
        return out[0]
    except (OSError, subprocess.CalledProcessError, IndexError):
        if any(c in nodelist for c in "[,"):
            raise ValueError(f"cannot expand SLURM_JOB_NODELIST={nodelist!r} without scontrol; "
                             "set PRDARTS_COORDINATOR=host:port") from None
        return nodelist
