"""Helpers shared by the tests: the repository root, the tiny search config, its final state,
and a copy of a finished search rolled back to the start of a cycle.

Hypothesis strategies are in `tests.helpers.strategies`, fabricated workdirs in
`tests.helpers.fake_runs`.
"""

import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from configs import quick

VOLATILE = ("compile", "memory_bytes")
"""Record keys that differ between two runs of the same computation, besides those ending in
`seconds`: what compiling cost (cache hits, seconds per program) and the memory measured."""


def last_number_on_eight_cpu_devices(script: str) -> float:
    """Runs `script` (Python) in a process with 8 CPU devices, from the repository root, and
    returns the last number it printed; its stderr tail if it fails."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return float(done.stdout.split()[-1])


def without_timings(record, also=()):
    """`record` without its timings and the other `VOLATILE` keys (and the keys in `also`): what
    two runs of the same computation (straight and resumed, 1 and 2 processes) agree on."""
    return {k: v for k, v in record.items()
            if not k.endswith("seconds") and k not in VOLATILE and k not in also}


def tiny_config(data_dir, **overrides):
    config = quick.get_config()
    config.data_dir = str(data_dir)
    config.channels = 4
    config.layers = 3
    config.schedule.epochs = (2, 2, 1, 1)
    config.schedule.grace = (1, 1, 0, 0)
    config.eval_max_samples = 256
    config.lr_schedule = "pytorch"      # what the tiny search's recorded results were run with
    config.depthwise_impl = "dense"     # (the same formulations; kernels/ tests the native ones)
    config.pool_impl = "reduce_window"
    config.bn_impl = "xla"
    config.sgd_impl = "xla"
    config.edge_sum_impl = "xla"
    config.compilation_cache_dir = ""  # the test session's cache (conftest) stays in force
    for k, v in overrides.items():
        config[k] = v
    return config


def short_config(data_dir, **overrides):
    """The tiny search with 4 steps per epoch and α started with a spread (decisive rankings)."""
    return tiny_config(data_dir, max_steps_per_epoch=4, alpha_init_scale=1.0, **overrides)


def final_state(workdir, config):
    """(state, meta) of the latest checkpoint of a search workdir, restored on one device."""
    from prdarts_jax.data import dataset_info
    from prdarts_jax.runtime.checkpoints import Checkpointer
    from prdarts_jax.runtime.parallel import data_placement
    from prdarts_jax.search.config import hyper
    from prdarts_jax.search.structure import restore_target

    info = dataset_info(config.dataset)
    ckpt = Checkpointer(str(workdir))
    try:
        return ckpt.restore_latest(lambda meta: restore_target(
            meta, config, info, hyper(config), data_placement(1)))
    finally:
        ckpt.close()


def rolled_back_copy(workdir, dest, cycle: int) -> str:
    """A copy of a finished search as it was when `cycle` began (later checkpoints removed)."""
    from prdarts_jax.runtime.checkpoints import position_id

    shutil.copytree(workdir, dest)
    for name in ("genotype.json", "genotype.txt", "final_pools.json"):
        os.remove(os.path.join(dest, name))
    ckpt_dir = os.path.join(dest, "checkpoints")
    for name in os.listdir(ckpt_dir):
        if name.isdigit() and int(name) > position_id(cycle, 0, 0):
            shutil.rmtree(os.path.join(ckpt_dir, name))
    assert str(position_id(cycle, 0, 0)) in os.listdir(ckpt_dir)
    return str(dest)


def fixed_mock_getitems(record_keys, generator, serialized=False):
    """tfds 4.9.10's mock `__getitems__`, fixed (see tests/data/test_sources.py)."""
    del serialized
    return [generator[key] for key in record_keys]


def tensorboard_scalars(logdir) -> dict:
    """{tag: {step: value}} of the TensorBoard event files in `logdir` (TFRecord framing read
    here; tensorboardX's protos decode the events)."""
    import glob
    import struct

    from tensorboardX.proto import event_pb2

    out: dict = {}
    for path in sorted(glob.glob(os.path.join(str(logdir), "events.out.tfevents.*"))):
        data = open(path, "rb").read()
        pos = 0
        while pos + 12 <= len(data):
            (length,) = struct.unpack("<Q", data[pos:pos + 8])
            if pos + 12 + length + 4 > len(data):
                break   # a record still being written
            event = event_pb2.Event.FromString(data[pos + 12:pos + 12 + length])
            pos += 12 + length + 4
            for value in event.summary.value:
                if value.WhichOneof("value") == "simple_value":
                    out.setdefault(value.tag, {})[event.step] = value.simple_value
    return out
