"""Wall time of a small search whose batch size grows, with and without compiling ahead.

    python benchmarks/variable_batch.py                  # compile_ahead 0 and 1, ~5 min on 2 CPUs
    python benchmarks/variable_batch.py --ahead 0,1,2 --layers 5 --channels 8

Each setting runs in a fresh process with an empty persistent cache (every compile is cold): a
digits search of `--cycles` short cycles whose batch size grows b_min 8 → 16 → 32 → 64 in every
cycle (the memory budget is ample), so each cycle compiles four batch sizes. Prints a Markdown
table: wall seconds of the search, seconds spent compiling (JAX's monitoring events, any
thread), and the batch sizes of each epoch.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _child(args: argparse.Namespace, ahead: int, workdir: str, data_dir: str) -> None:
    sys.path.insert(0, ROOT)
    from configs import quick
    from prdarts_jax.search.loop import run_search

    config = quick.get_config()
    config.data_dir = data_dir
    config.channels, config.layers = args.channels, args.layers
    config.schedule.epochs = (1,) * args.cycles
    config.schedule.grace = (0,) * args.cycles
    config.schedule.morphs = (1,) * (args.cycles - 1) + (0,)
    config.schedule.keep = (3,) * (args.cycles - 1) + (1,)
    config.max_steps_per_epoch, config.eval_max_samples = args.steps, 64
    config.batch.variable = True
    config.batch.min, config.batch.step, config.batch.max, config.batch.interval = 8, 8, 64, 2
    config.batch.memory_budget_mb = 16384
    if "compile_ahead" in config.batch:
        config.batch.compile_ahead = ahead
    config.compilation_cache_dir = os.path.join(workdir, "xla")
    t0 = time.time()
    run_search(config, os.path.join(workdir, "run"))
    wall = time.time() - t0
    epochs = [json.loads(line) for line in open(os.path.join(workdir, "run", "metrics.jsonl"))]
    epochs = [r for r in epochs if r["type"] == "epoch"]
    print(json.dumps({"ahead": ahead, "wall": wall,
                      "compile": sum(r["compile_seconds"] for r in epochs),
                      "sizes": [r["batch_size"] for r in epochs]}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ahead", default="0,1", help="compile_ahead thread counts")
    parser.add_argument("--channels", type=int, default=4)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--cycles", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10, help="steps per epoch")
    parser.add_argument("--data_dir", default=os.path.join(tempfile.gettempdir(), "prdarts_tfds"))
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        _child(args, args.child, args.workdir, args.data_dir)
        return
    rows = []
    for ahead in (int(v) for v in args.ahead.split(",")):
        with tempfile.TemporaryDirectory() as workdir:
            cmd = [sys.executable, __file__, "--child", str(ahead), "--workdir", workdir,
                   "--channels", str(args.channels), "--layers", str(args.layers),
                   "--cycles", str(args.cycles), "--steps", str(args.steps),
                   "--data_dir", args.data_dir]
            out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
            if out.returncode != 0:
                sys.exit(f"compile_ahead={ahead} failed:\n{out.stderr[-3000:]}")
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"search: C={args.channels}, {args.layers} cells, {args.cycles} cycles of "
          f"{args.steps} steps, batch 8 → 64; load {os.getloadavg()[0]:.1f}\n")
    print("| compile_ahead | wall (s) | compiling (s) | batch size per epoch |")
    print("|---:|---:|---:|---|")
    for r in rows:
        print(f"| {r['ahead']} | {r['wall']:.1f} | {r['compile']:.1f} | {r['sizes']} |")


if __name__ == "__main__":
    main()
