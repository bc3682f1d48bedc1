"""Jobs of several JAX processes on this machine (loopback only), started through the same
environment variables `launch/grid_slurm.sh` exports, each process with its own forced host
devices; their logs, exit codes and timings."""

import dataclasses
import os
import socket
import subprocess
import sys
import time

from prdarts_jax.runtime import compile_cache
from tests.helpers import ROOT

CACHE = os.environ.get("PRDARTS_TEST_XLA_CACHE",
                       os.path.join(compile_cache.DEFAULT_DIR, "tests"))

TINY_SEARCH = ("--config.channels=4", "--config.layers=3", "--config.schedule.epochs=(1,1)",
               "--config.schedule.grace=(0,0)", "--config.schedule.keep=(2,1)",
               "--config.schedule.morphs=(1,0)", "--config.max_steps_per_epoch=3",
               "--config.eval_max_samples=64", "--config.alpha_init_scale=1.0",
               f"--config.compilation_cache_dir={CACHE}")
"""A two-cycle search (prune and morph, then the final prune) of 3 steps per epoch; α starts
with a spread, so rankings are decided by margins far above float noise."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclasses.dataclass
class Process:
    popen: subprocess.Popen
    log: str
    ended: float | None = None

    @property
    def returncode(self) -> int | None:
        return self.popen.returncode

    def text(self) -> str:
        with open(self.log) as f:
            return f.read()


def start(args, *, processes: int, devices: int, logdir, env=None, per_process_env=None):
    """`processes` processes of `python args…`, each with `devices` host CPU devices."""
    port = free_port()
    out = []
    for i in range(processes):
        e = {**os.environ, "PRDARTS_HOST_MEMORY": "off", "JAX_PLATFORMS": "cpu",
             "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
             "PRDARTS_PEER_TIMEOUT_SECONDS": "10", **(env or {}),
             **((per_process_env or {}).get(i, {}))}
        if processes > 1:
            e.update(PRDARTS_COORDINATOR=f"127.0.0.1:{port}",
                     PRDARTS_NUM_PROCESSES=str(processes), PRDARTS_PROCESS_ID=str(i))
        log = os.path.join(str(logdir), f"process_{i}.log")
        with open(log, "w") as f:
            out.append(Process(subprocess.Popen([sys.executable, *args], cwd=ROOT, env=e,
                                                stdout=f, stderr=subprocess.STDOUT), log))
    return out


def wait(job, timeout=1200):
    """Waits for every process; records when each ended."""
    deadline = time.time() + timeout
    while any(p.popen.poll() is None for p in job) and time.time() < deadline:
        for p in job:
            if p.ended is None and p.popen.poll() is not None:
                p.ended = time.time()
        time.sleep(0.2)
    for p in job:
        if p.popen.poll() is None:
            p.popen.kill()
        p.popen.wait()
        if p.ended is None:
            p.ended = time.time()
    return job


def run(args, **kwargs):
    return wait(start(args, **kwargs))
