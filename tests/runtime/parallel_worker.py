"""Runs in a subprocess with 8 host CPU devices (XLA_FLAGS) for tests/runtime/test_parallel.py.

    python tests/runtime/parallel_worker.py <data_dir> <out_dir> <one-device workdir to resume>

Writes <out_dir>/result.json: the largest differences between a few bilevel steps on 1 and on 8
devices, the one-line error for a batch that does not divide, the genotype of the short tiny
search on 8 devices (workdir <out_dir>/w8), and the genotype of the one-device search resumed
here on 8 devices from its cycle-3 checkpoint.
"""

import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from prdarts_jax.runtime import compile_cache  # noqa: E402

compile_cache.enable(os.environ.get("PRDARTS_TEST_XLA_CACHE",
                                    os.path.join(compile_cache.DEFAULT_DIR, "tests")))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from prdarts_jax.data import DataSpec, dataset_info, load_split  # noqa: E402
from prdarts_jax.kernels import primitives  # noqa: E402
from prdarts_jax.models.supernet import init_alphas  # noqa: E402
from prdarts_jax.runtime import parallel
from prdarts_jax.search import bilevel
from prdarts_jax.search.config import ConfigError, check_devices, hyper  # noqa: E402
from prdarts_jax.search.loop import run_search  # noqa
from prdarts_jax.search.pools import initial_pools  # noqa: E402
from prdarts_jax.search.structure import build_supernet, init_variables, programs_for  # noqa
from tests.helpers import rolled_back_copy, short_config  # noqa: E402

STEPS = 3


def steps_on(n: int, config, variables, alphas, images, labels) -> dict:
    """STEPS first-order search steps (α step, then weight step) on a mesh of n devices."""
    info = dataset_info(config.dataset)
    net = build_supernet(initial_pools(), config, info.num_classes)
    h = hyper(config)
    placement = parallel.data_placement(n)
    programs = programs_for(net, DataSpec(tuple(info.mean), tuple(info.std), info.pad),
                            h, config.fuse_grad_programs)
    state = placement.replicate({"params": variables["params"],
                                 "batch_stats": variables["batch_stats"], "alphas": alphas,
                                 **bilevel.fresh_optimizer_states(h, variables["params"], alphas)})
    dev_images, dev_labels = placement.replicate((images, labels))
    rng = np.random.default_rng(0)
    for s in range(STEPS):
        a_idx, w_idx = (placement.shard_batch(rng.permutation(len(labels))[:32].astype(np.int32))
                        for _ in range(2))
        state, _ = bilevel.alpha_step(programs, state, images=dev_images, labels=dev_labels,
                                      idx=a_idx, key=jax.random.PRNGKey(100 + s))
        state, _ = bilevel.weight_step(programs, state, images=dev_images, labels=dev_labels,
                                       idx=w_idx, key=jax.random.PRNGKey(s), lr=0.05)
    return jax.device_get(state)


def max_differences(data_dir: str) -> dict:
    config = short_config(data_dir)
    info = dataset_info(config.dataset)
    images, labels = load_split(config.dataset, "train", data_dir)
    labels = labels.astype(np.int32)
    net = build_supernet(initial_pools(), config, info.num_classes)
    key = jax.random.PRNGKey(0)
    alphas = jax.device_get(init_alphas(jax.random.fold_in(key, 1), net.normal, net.reduce,
                                        config.alpha_init_scale))
    with primitives.use_impls(config.depthwise_impl, config.pool_impl, config.bn_impl,
                              config.sgd_impl, config.edge_sum_impl):
        variables = jax.device_get(init_variables(net, jax.random.fold_in(key, 2),
                                                  info.image_shape, alphas))
        one, eight = (steps_on(n, config, variables, alphas, images, labels) for n in (1, 8))
    diff = jax.tree.map(lambda a, b: float(np.max(np.abs(a - b))), one, eight)
    return {k: max(jax.tree.leaves(diff[k])) for k in ("params", "alphas", "batch_stats")}


def main(data_dir: str, out_dir: str, one_device_workdir: str) -> None:
    assert jax.device_count() == 8, jax.devices()
    result = {"differences": max_differences(data_dir)}
    try:
        check_devices(short_config(data_dir, batch_size=36))
    except ConfigError as err:
        result["batch_error"] = str(err)
    result["genotype_8"] = run_search(short_config(data_dir), os.path.join(out_dir, "w8")
                                      ).to_json()
    resumed = rolled_back_copy(one_device_workdir, os.path.join(out_dir, "from1"), cycle=3)
    result["genotype_1_to_8"] = run_search(short_config(data_dir), resumed).to_json()
    with open(os.path.join(out_dir, "result.json"), "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main(*sys.argv[1:4])
