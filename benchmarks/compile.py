"""Compile and step times of the supernet gradient program, cold and from JAX's persistent cache.

    python benchmarks/compile.py                        # C=4, 3 cells, 8x8: ~4 min on 2 CPUs
    python benchmarks/compile.py --depthwise shift_vjp --pool separable
    python benchmarks/compile.py --depthwise dense,shift_vjp --pool reduce_window,separable
    python benchmarks/compile.py --channels 16 --layers 8 --image 32 --batch 24,64   # paper scale
    python benchmarks/compile.py --bn xla,native --fuse     # XLA's BatchNorm vs the C++ kernel
    python benchmarks/compile.py --edge-sum xla,native      # the mixed edges' weighted sums

For each formulation (each of `--depthwise` × `--pool` × `--bn` × `--edge-sum`,
comma-separated lists; see `primitives.use_impls`), pool set (the cycle-1 pool and a heavy
mid-search pool, the same on every edge) and batch size, times the weight-gradient program of
`bilevel.make_programs` (as the search builds it) in three stages, `jitted.trace(...)`,
`.lower()`, `.compile()`, then its steady step time (median of `--repeats` calls after one
warm-up) and `memory.compiled_bytes` (what `CompiledMemoryProbe` reads).

Each formulation runs in two fresh processes sharing a new, empty cache folder: the first
compiles and writes the cache (cold), the second finds every program there (warm: its compile
column is the load time of a cache hit). On a CPU each measuring process runs under an
address-space cap (`--max-memory-gib`, default half the RAM): XLA compiling some formulations
of the heavy pool needs more host memory than the machine has, and such a job is reported as
failed instead of taking the machine down. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Iterator

POOLS = {
    "cycle1": ("maxpool3", "avgpool3", "skip", "conv_k3_d1"),
    "heavy": ("maxpool3", "skip", "conv_k3_d1_m1", "conv_k5_d1_m1", "conv_k7_d1", "conv_k5_d2"),
}
DATASETS = {8: "digits", 32: "cifar10"}
_OOM_MARKS = ("bad_alloc", "MemoryError", "Unable to allocate", "RESOURCE_EXHAUSTED")


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


def _measure(spec: dict) -> Iterator[dict]:
    """Runs in a child process: times each (pool, batch) job for one formulation and cache dir."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from prdarts_jax.data import dataset_info
    from prdarts_jax.kernels import primitives
    from prdarts_jax.models.supernet import Supernet, init_alphas
    from prdarts_jax.runtime import compile_cache
    from prdarts_jax.search import bilevel
    from prdarts_jax.search.batch_size.memory import compiled_bytes
    from prdarts_jax.space.opspec import OpSpec

    compile_cache.enable(spec["cache"])
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    info = dataset_info(DATASETS[spec["image"]])
    data = bilevel.DataSpec(tuple(info.mean), tuple(info.std), info.pad)
    n = 2 * max(b for _, b in spec["jobs"])
    rng = np.random.default_rng(0)
    images = jnp.asarray(rng.integers(0, 256, (n, *info.image_shape), dtype=np.uint8))
    labels = jnp.asarray(rng.integers(0, info.num_classes, n), jnp.int32)
    key = jax.random.PRNGKey(0)
    nets: dict = {}
    with primitives.use_impls(spec["depthwise"], spec["pool"], spec["bn"],
                              weighted_sum=spec["edge_sum"]):
        for pool, b in spec["jobs"]:
            if pool not in nets:
                edges = tuple(tuple(OpSpec.parse(o) for o in POOLS[pool]) for _ in range(14))
                net = Supernet(edges, edges, info.num_classes, c=spec["channels"],
                               layers=spec["layers"])
                alphas = init_alphas(key, edges, edges)
                nets[pool] = (alphas, _variables(net, info.image_shape, alphas, rng),
                              bilevel.make_programs(net, data, bilevel.Hyper(), spec["fuse"]))
            alphas, variables, programs = nets[pool]
            program = programs.weight_grads
            idx = jnp.arange(b, dtype=jnp.int32)
            bs = jax.tree.map(jnp.copy, variables["batch_stats"])
            args = (variables["params"], alphas, bs, images, labels, idx, key)
            t0 = time.perf_counter()
            traced = program.trace(*args)
            t1 = time.perf_counter()
            lowered = traced.lower()
            t2 = time.perf_counter()
            compiled = lowered.compile()
            t3 = time.perf_counter()
            times = []
            for _ in range(spec["repeats"] + 1):
                s = time.perf_counter()
                _, bs, metrics = compiled(variables["params"], alphas, bs, images, labels, idx,
                                          key)
                jax.block_until_ready((bs, metrics))
                times.append(time.perf_counter() - s)
            yield {"pool": pool, "b": b, "trace": t1 - t0, "lower": t2 - t1,
                   "compile": t3 - t2, "step": statistics.median(times[1:]),
                   "mib": compiled_bytes(compiled) / 2**20}


def _run_jobs(spec: dict, limit_bytes: int) -> dict[tuple[str, int], dict]:
    """Results per job; a job whose process dies (XLA exhausting the host memory cap while
    compiling, say) gets an `error` and the jobs after it run in a new process. The cap
    (0: none; accelerator runtimes reserve far more address space than they use) is set by
    the child itself."""
    results: dict[tuple[str, int], dict] = {}
    pending = [tuple(j) for j in spec["jobs"]]
    while pending:
        started = time.perf_counter()
        out = subprocess.run([sys.executable, __file__, "--child",
                              json.dumps({**spec, "jobs": pending, "limit": limit_bytes})],
                             capture_output=True, text=True)
        for line in out.stdout.splitlines():
            if line.startswith("{"):
                row = json.loads(line)
                results[(row["pool"], row["b"])] = row
        pending = [j for j in pending if j not in results]
        if out.returncode == 0 or not pending:
            break
        oom = out.returncode == -9 or any(m in out.stderr for m in _OOM_MARKS)
        if oom:
            why = "out of host memory" + (f" (cap {limit_bytes / 2**30:.1f} GiB)"
                                          if limit_bytes else "")
        else:
            why = f"exit code {out.returncode}: {out.stderr.strip().splitlines()[-1:]}"
        results[pending[0]] = {"error": f"{why} after {time.perf_counter() - started:.0f} s"}
        pending = pending[1:]
    return results


def main() -> None:
    from prdarts_jax.search.batch_size.memory import system_memory_bytes

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
    ap.add_argument("--bn", default="xla", help="BatchNorm formulations to time: xla,native")
    ap.add_argument("--edge-sum", default="xla",
                    help="formulations of the mixed edges' weighted sums to time: xla,native")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--fuse", action="store_true",
                    help="time the fused program (gradients w.r.t. weights and α)")
    ap.add_argument("--max-memory-gib", type=float, default=None,
                    help="address-space cap of each measuring process; 0: none (default: half "
                    "the RAM on a CPU, none elsewhere)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        spec = json.loads(args.child)
        if spec["limit"]:
            resource.setrlimit(resource.RLIMIT_AS, (spec["limit"], spec["limit"]))
        for row in _measure(spec):
            print(json.dumps(row), flush=True)
        return

    import jax
    print(f"jax {jax.__version__} on {jax.default_backend()}, {os.cpu_count()} CPUs; "
          f"C={args.channels}, {args.layers} cells, {args.image}x{args.image} images, "
          f"{'fused' if args.fuse else 'weight'} gradient program\n")
    print("| depthwise | pool impl | BN | edge sum | pool set | b | trace s | lower s "
          "| compile s (cold) | load s (warm) | step s | probe MiB |")
    print("|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|", flush=True)
    cap = args.max_memory_gib
    if cap is None:
        cap = system_memory_bytes() / 2**31 if jax.default_backend() == "cpu" else 0
    limit = int(cap * 2**30)
    jobs = [(p, int(b)) for p in args.pools.split(",") for b in args.batch.split(",")]
    combos = [(dw, pi, bn, es) for dw in args.depthwise.split(",")
              for pi in args.pool.split(",") for bn in args.bn.split(",")
              for es in args.edge_sum.split(",")]
    for dw, pi, bn, es in combos:
        with tempfile.TemporaryDirectory(prefix="prdarts-xla-") as cache:
            spec = {"cache": cache, "depthwise": dw, "pool": pi, "bn": bn, "edge_sum": es,
                    "jobs": jobs,
                    "channels": args.channels, "layers": args.layers, "image": args.image,
                    "repeats": args.repeats, "fuse": args.fuse}
            cold = _run_jobs(spec, limit)
            done = [j for j in jobs if "error" not in cold[j]]
            warm = _run_jobs({**spec, "jobs": done}, limit) if done else {}
        for job in jobs:
            c, w = cold[job], warm.get(job, {})
            head = f"| {dw} | {pi} | {bn} | {es} | {job[0]} | {job[1]} |"
            if "error" in c:
                print(f"{head} failed: {c['error']} | | | | | |", flush=True)
                continue
            load = f"{w['compile']:.2f}" if "compile" in w else w.get("error", "—")
            print(f"{head} {c['trace']:.2f} | {c['lower']:.2f} | {c['compile']:.2f} | "
                  f"{load} | {c['step']:.4f} | {c['mib']:.1f} |", flush=True)

if __name__ == "__main__":
    main()
