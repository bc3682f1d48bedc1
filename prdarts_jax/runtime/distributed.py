"""Multi-host start-up and failure: `jax.distributed.initialize` when the environment
describes a job, and a watchdog that stops a process whose peers are gone.

The launchers export PRDARTS_COORDINATOR (host:port), PRDARTS_NUM_PROCESSES and
PRDARTS_PROCESS_ID; without them, a SLURM step with more than one task is recognised from
SLURM_NTASKS / SLURM_PROCID and the coordinator is the first node of the job on port
PRDARTS_COORDINATOR_PORT (default 12355). A single process initialises nothing. On CPUs the
collectives run over Gloo (TCP).

When one process of a job dies (killed, out of memory, a node lost), the others would wait in
their next collective until it fails, and JAX's coordination service would abort them only
after its heartbeat timeout (100 s by default), with pages of C++ stack. Instead every process
runs a `PeerWatchdog`: each bumps a counter in the coordination service's key-value store every
`PRDARTS_PEER_POLL_SECONDS` (2 s) and reads the others'; a peer whose counter has not moved for
`PRDARTS_PEER_TIMEOUT_SECONDS` (20 s), or a coordinator that no longer answers, stops this
process at once with one `error:` line and exit code 3. A collective that fails because a peer
closed its connection ends the same way (`runtime.cli`). Nothing is lost: the last complete
checkpoint is the one every process finished (orbax commits a checkpoint only after all
processes wrote their part), and running all processes again resumes from it. JAX's own
heartbeat timeout is set to `PRDARTS_HEARTBEAT_TIMEOUT_SECONDS` (60 s) as a backstop.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import subprocess
import sys
import threading
import time
from typing import Any, Callable, Mapping

log = logging.getLogger("prdarts_jax")

DEFAULT_PORT = 12355
PEER_EXIT_CODE = 3
TIMEOUTS = {"PRDARTS_PEER_POLL_SECONDS": 2.0, "PRDARTS_PEER_TIMEOUT_SECONDS": 20.0,
            "PRDARTS_HEARTBEAT_TIMEOUT_SECONDS": 60.0}
"""The watchdog's poll interval and silence limit, and JAX's heartbeat timeout (seconds)."""


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


def timeouts(env: Mapping[str, str] | None = None) -> dict[str, float]:
    """TIMEOUTS, each overridden by its environment variable (a positive number)."""
    env = os.environ if env is None else env
    out = {}
    for key, default in TIMEOUTS.items():
        try:
            out[key] = float(env.get(key) or default)
        except ValueError:
            out[key] = -1.0
        if out[key] <= 0:
            raise ValueError(f"{key}={env.get(key)!r} must be a positive number of seconds")
    return out


def maybe_initialize(env: Mapping[str, str] | None = None) -> ClusterSpec | None:
    """Initialises jax.distributed for a multi-process job and starts its watchdog; must run
    before any JAX use."""
    spec = cluster_spec(env)
    if spec is None:
        return None
    limits = timeouts(env)
    import jax
    if not _accelerator_expected(env):
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        spec.coordinator, spec.num_processes, spec.process_id,
        heartbeat_timeout_seconds=int(limits["PRDARTS_HEARTBEAT_TIMEOUT_SECONDS"]))
    log.info("process %d of %d (coordinator %s)", spec.process_id, spec.num_processes,
             spec.coordinator)
    from jax._src import distributed as jax_distributed
    watchdog = PeerWatchdog(jax_distributed.global_state.client, spec,
                            poll=limits["PRDARTS_PEER_POLL_SECONDS"],
                            silence=limits["PRDARTS_PEER_TIMEOUT_SECONDS"])
    _WATCHDOGS.append(watchdog)
    watchdog.start()
    return spec


_WATCHDOGS: list["PeerWatchdog"] = []


def stop_watchdogs() -> None:
    """Stops the watchdogs of a process whose work is done: the processes of a job end one
    after another, and a finished one is not a lost one."""
    while _WATCHDOGS:
        _WATCHDOGS.pop().stopped.set()


def _accelerator_expected(env: Mapping[str, str] | None) -> bool:
    from prdarts_jax.runtime import host_memory
    return host_memory.accelerator_expected(env)


def stop_for_lost_peer(reason: str) -> None:
    """One error line, then exit at once (code 3), skipping JAX's shutdown barrier (which
    would wait out its heartbeat timeout for the lost peer, then abort)."""
    print(f"error: {reason}; the last complete checkpoint is kept: start all processes again "
          "with the same command to resume", file=sys.stderr, flush=True)
    os._exit(PEER_EXIT_CODE)


class PeerWatchdog(threading.Thread):
    """Stops this process when another process of the job goes silent (module docstring).

    `client` is JAX's coordination client (`key_value_set`, `key_value_try_get`); `on_lost`
    (by default `stop_for_lost_peer`) gets the reason."""

    def __init__(self, client: Any, spec: ClusterSpec, *, poll: float, silence: float,
                 on_lost: Callable[[str], None] = stop_for_lost_peer):
        super().__init__(name="prdarts-peer-watchdog", daemon=True)
        self.client, self.spec, self.poll, self.silence = client, spec, poll, silence
        self.on_lost = on_lost
        self.beats = 0
        self._seen: dict[int, tuple[str, float]] = {}
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            reason = self.check()
            if reason:
                self.on_lost(reason)
                return
            self.stopped.wait(self.poll)

    def check(self, now: float | None = None) -> str | None:
        """Beats once and looks at the others; the reason to stop, or None."""
        now = time.monotonic() if now is None else now
        me = self.spec.process_id
        try:
            self.beats += 1
            self.client.key_value_set(f"prdarts/beat/{me}", str(self.beats),
                                      allow_overwrite=True)
            values = {p: self._read(p) for p in range(self.spec.num_processes) if p != me}
        except Exception as err:  # noqa: BLE001 - the coordinator itself is gone
            return (f"process {me} of {self.spec.num_processes} lost the coordinator "
                    f"({self.spec.coordinator}: {str(err).splitlines()[0][:120]})")
        for p, value in values.items():
            last = self._seen.get(p)
            if last is None or last[0] != value:
                self._seen[p] = (value, now)
            elif value and now - last[1] > self.silence:
                return (f"process {p} of {self.spec.num_processes} stopped answering "
                        f"({now - last[1]:.0f} s without a sign of life); this is process {me}")
        return None

    def _read(self, p: int) -> str:
        try:
            return self.client.key_value_try_get(f"prdarts/beat/{p}")
        except Exception as err:  # noqa: BLE001 - not written yet
            if "NOT_FOUND" in str(err) or "not found" in str(err).lower():
                return ""
            raise


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
