"""Compile and step times of the supernet gradient program, cold and from JAX's persistent cache.

    python benchmarks/compile.py                        # C=4, 3 cells, 8x8: ~4 min on 2 CPUs
    python benchmarks/compile.py --depthwise shift_vjp --pool separable
    python benchmarks/compile.py --depthwise dense,shift_vjp --pool reduce_window,separable
    python benchmarks/compile.py --channels 16 --layers 8 --image 32 --batch 24,64   # paper scale

For each formulation (each of `--depthwise` × each of `--pool`, comma-separated lists; see
`primitives.use_impls`), pool set (the
cycle-1 pool and a heavy mid-search pool, the same on every edge) and batch size, times the
weight-gradient program of `bilevel.make_programs` (as the search builds it) in three stages,
`jitted.trace(...)`, `.lower()`, `.compile()`, then its steady step time (median of `--repeats`
calls after one warm-up) and `memory.compiled_bytes` (what `CompiledMemoryProbe` reads).

Each formulation runs in two fresh processes sharing a new, empty cache folder: the first
compiles and writes the cache (cold), the second finds every program there (warm: its compile
column is the load time of a cache hit). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

POOLS = {
    "cycle1": ("maxpool3", "avgpool3", "skip", "conv_k3_d1"),
    "heavy": ("maxpool3", "skip", "conv_k3_d1_m1", "conv_k5_d1_m1", "conv_k7_d1", "conv_k5_d2"),
}
DATASETS = {8: "digits", 32: "cifar10"}


def _variables(net, image_shape, alphas, rng) -> dict:
    """Random weights and fresh BN statistics filled on the host: compiling the supernet's
    initialiser would cost more than the program timed here."""
    import jax
    import jax.numpy as jnp

    x = jax.ShapeDtypeStruct((2, *image_shape), jnp.float32)
    shapes = jax.eval_shape(lambda: net.init(jax.random.PRNGKey(0), x, alphas, False))
    params = jax.tree.map(lambda s: jnp.asarray(0.1 * rng.standard_normal(s.shape), s.dtype),
                          shapes["params"])
    stats = jax.tree_util.tree_map_with_path(
        lambda path, s: jnp.full(s.shape, float(path[-1].key == "var"), s.dtype),
        shapes["batch_stats"])
    return {"params": params, "batch_stats": stats}


def _measure(spec: dict) -> list[dict]:
    """Runs in a child process: times every (pool, batch) for one formulation and cache dir."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from prdarts_jax import bilevel, compile_cache, primitives
    from prdarts_jax.data import dataset_info
    from prdarts_jax.memory import compiled_bytes
    from prdarts_jax.opspec import OpSpec
    from prdarts_jax.supernet import Supernet, init_alphas

    compile_cache.enable(spec["cache"])
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    info = dataset_info(DATASETS[spec["image"]])
    data = bilevel.DataSpec(tuple(info.mean), tuple(info.std), info.pad)
    n = 2 * max(spec["batch"])
    rng = np.random.default_rng(0)
    images = jnp.asarray(rng.integers(0, 256, (n, *info.image_shape), dtype=np.uint8))
    labels = jnp.asarray(rng.integers(0, info.num_classes, n), jnp.int32)
    rows = []
    with primitives.use_impls(spec["depthwise"], spec["pool"]):
        for pool in spec["pools"]:
            edges = tuple(tuple(OpSpec.parse(o) for o in POOLS[pool]) for _ in range(14))
            net = Supernet(edges, edges, info.num_classes, c=spec["channels"],
                           layers=spec["layers"])
            key = jax.random.PRNGKey(0)
            alphas = init_alphas(key, edges, edges)
            variables = _variables(net, info.image_shape, alphas, rng)
            programs = bilevel.make_programs(net, data, bilevel.Hyper(), spec["fuse"])
            for b in spec["batch"]:
                idx = jnp.arange(b, dtype=jnp.int32)
                bs = jax.tree.map(jnp.copy, variables["batch_stats"])
                args = (variables["params"], alphas, bs, images, labels, idx, key)
                t0 = time.perf_counter()
                traced = programs.weight_grads.trace(*args)
                t1 = time.perf_counter()
                lowered = traced.lower()
                t2 = time.perf_counter()
                compiled = lowered.compile()
                t3 = time.perf_counter()
                times = []
                for _ in range(spec["repeats"] + 1):
                    s = time.perf_counter()
                    _, bs, metrics = compiled(variables["params"], alphas, bs, images, labels,
                                              idx, key)
                    jax.block_until_ready((bs, metrics))
                    times.append(time.perf_counter() - s)
                rows.append({"pool": pool, "b": b, "trace": t1 - t0, "lower": t2 - t1,
                             "compile": t3 - t2, "step": statistics.median(times[1:]),
                             "mib": compiled_bytes(compiled) / 2**20})
    return rows


def _child(spec: dict) -> list[dict]:
    out = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)],
                         capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"benchmark process failed:\n{out.stderr[-4000:]}")
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--channels", type=int, default=4)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--image", type=int, choices=sorted(DATASETS), default=8,
                    help="8: digits-like (1 channel), 32: CIFAR-like (3 channels)")
    ap.add_argument("--batch", default="8,16", help="comma-separated batch sizes")
    ap.add_argument("--pools", default="cycle1,heavy", help=f"of {', '.join(POOLS)}")
    ap.add_argument("--depthwise", default="dense", help="formulations to time, e.g. "
                    "dense,shift_vjp")
    ap.add_argument("--pool", default="reduce_window", help="formulations to time, e.g. "
                    "reduce_window,separable")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--fuse", action="store_true",
                    help="time the fused program (gradients w.r.t. weights and α)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        for row in _measure(json.loads(args.child)):
            print(json.dumps(row))
        return

    import jax
    print(f"jax {jax.__version__} on {jax.default_backend()}, {os.cpu_count()} CPUs; "
          f"C={args.channels}, {args.layers} cells, {args.image}x{args.image} images, "
          f"{'fused' if args.fuse else 'weight'} gradient program\n")
    print("| depthwise | pool impl | pool set | b | trace s | lower s | compile s (cold) "
          "| load s (warm) | step s | probe MiB |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for dw in args.depthwise.split(","):
        for pi in args.pool.split(","):
            with tempfile.TemporaryDirectory(prefix="prdarts-xla-") as cache:
                spec = {"cache": cache, "depthwise": dw, "pool": pi,
                        "pools": args.pools.split(","), "channels": args.channels,
                        "layers": args.layers, "image": args.image,
                        "batch": [int(b) for b in args.batch.split(",")],
                        "repeats": args.repeats, "fuse": args.fuse}
                cold, warm = _child(spec), _child(spec)
            for c, w in zip(cold, warm):
                print(f"| {dw} | {pi} | {c['pool']} | {c['b']} | {c['trace']:.2f} | "
                      f"{c['lower']:.2f} | {c['compile']:.2f} | {w['compile']:.2f} | "
                      f"{c['step']:.4f} | {c['mib']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
