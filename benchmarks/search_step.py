"""The search supernet's first-order step (α step + weight step), JAX vs. a PyTorch reference.

    python benchmarks/search_step.py                                  # paper scale, batch 32, 64
    python benchmarks/search_step.py --channels 4 --layers 3 --image 8 --batch 8 --reps 5
    python benchmarks/search_step.py --pools heavy --batch 64 --torch-compile
    python benchmarks/search_step.py --jax-impls default,native       # also XLA's native ops

For each pool set (the same pool on all 14 edges of both cell types) and batch size, both
frameworks build the same supernet (C=`--channels`, `--layers` cells, reductions at 1/3 and
2/3) on the same weights (drawn in JAX, ported to PyTorch) and run the same step on the same two
batches (an α batch and a weight batch, `--image`² pixels, 3 channels). Then:

1. parity: the losses of the first two steps (from the same state) must agree to a tolerance:
   the first α-step loss checks the network, the next two the optimizers' semantics;
2. memory: resident state + the step's peak allocation (see `harness`);
3. timing: `--warmup` untimed steps each, then `--reps` steps each, interleaved (JAX, PyTorch,
   JAX, PyTorch, …), or with `--order blocks` all of JAX's steps, then all of PyTorch's.

JAX's compile time (trace + lower + compile of the step programs, cold: no persistent cache) is
reported separately and never part of a step time; with `--torch-compile`, PyTorch's compile
time is its first call's time less a steady step. Prints a Markdown table (time ratios relative
to PyTorch eager; images/s counts both batches of a step); `--json` saves the numbers.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks import harness, jax_steps  # noqa: E402
from prdarts_jax.kernels import primitives
from prdarts_jax.models.supernet import Supernet, init_alphas  # noqa: E402
from prdarts_jax.runtime import xla_options  # noqa: E402
from prdarts_jax.space.opspec import OpSpec  # noqa: E402

POOLS = {
    "cycle1": ("maxpool3", "avgpool3", "skip", "conv_k3_d1"),
    "heavy": ("maxpool3", "skip", "conv_k3_d1_m1", "conv_k5_d1_m1", "conv_k7_d1", "conv_k5_d2"),
}
# (depthwise, pool) formulations per named set; None: the backend's default
IMPL_SETS: dict[str, tuple[str | None, str | None]] = {
    "default": (None, None),                       # the backend's defaults, which a search uses
    "native": ("grouped", "reduce_window"),        # XLA's own grouped conv and reduce_window
    "dense": ("dense", "reduce_window"),
    "shift": ("shift_vjp", "separable"),
}
LR = 0.025


def impl_label(name: str) -> str:
    dw, pool = IMPL_SETS[name]
    dw = dw or primitives.default_impl("depthwise_conv")
    pool = pool or primitives.default_impl("max_pool3")
    return f"{dw}+{pool}"


def tolerances() -> tuple[float, float]:
    """(first loss, losses after an update) relative tolerances. GPUs compute float32
    convolutions in TF32 by default in both frameworks, so they get looser ones."""
    return (1e-4, 1e-3) if jax.default_backend() == "cpu" else (1e-2, 2e-2)


def run_config(args: argparse.Namespace, pool: str, b: int, device: str | None
               ) -> tuple[list, dict]:
    """Builds both networks for one (pool, batch size), checks parity, times; returns the rows
    and the parity numbers."""
    config = f"{pool} b={b}"
    ops = tuple(OpSpec.parse(o) for o in POOLS[pool])
    edges = (ops,) * 14
    net = Supernet(edges, edges, args.classes, c=args.channels, layers=args.layers)
    alphas = init_alphas(jax.random.PRNGKey(args.seed), edges, edges)
    variables = jax_steps.random_variables(net, (2, args.image, args.image, 3), (alphas, False),
                                           seed=args.seed)
    rng = np.random.default_rng(args.seed)
    xs = [rng.standard_normal((b, args.image, args.image, 3)).astype(np.float32)
          for _ in range(2)]
    ys = [rng.integers(0, args.classes, b).astype(np.int32) for _ in range(2)]
    j_batch = [jnp.asarray(xs[0]), jnp.asarray(ys[0]), jnp.asarray(xs[1]), jnp.asarray(ys[1])]
    batch_bytes = 2 * (xs[0].nbytes + ys[0].nbytes)

    contenders: dict[str, harness.Contender] = {}
    for impls in args.jax_impls.split(",") if args.frameworks != "torch" else ():
        dw, pl = IMPL_SETS[impls]
        step = jax_steps.SearchStep(net, fused=args.fused)
        state = step.init_state(jax_steps.copy_tree(variables), jax_steps.copy_tree(alphas))
        with primitives.use_impls(dw, pl):
            compiled = step.compile(state, *j_batch, LR)
        name = f"JAX {impl_label(impls)}" + (" fused" if args.fused else "")
        box = {"state": state}

        def run(step=step, box=box):
            box["state"], losses = step(box["state"], *j_batch, LR)
            jax.block_until_ready((box["state"], losses))
            return tuple(float(v) for v in losses)

        peak = jax_steps.tree_bytes(state) + batch_bytes + compiled.transient_bytes()
        contenders[name] = harness.Contender(run, lambda peak=peak: peak, compiled.seconds)
        print(f"  {config}: {name} compiled in {compiled.seconds:.1f} s", flush=True)

    def torch_contender(compile_model: bool, threads: int = 0) -> harness.Contender:
        import torch

        from benchmarks import torch_reference as ref

        t_batch = [torch.from_numpy(np.ascontiguousarray(xs[0].transpose(0, 3, 1, 2))).to(device),
                   torch.from_numpy(ys[0].astype(np.int64)).to(device),
                   torch.from_numpy(np.ascontiguousarray(xs[1].transpose(0, 3, 1, 2))).to(device),
                   torch.from_numpy(ys[1].astype(np.int64)).to(device)]
        model = ref.SearchNetwork(edges, edges, args.classes, args.channels, args.layers).to(device)
        ref.load_jax_variables(model, variables)
        model.train()
        talphas = ref.make_alphas(alphas, device)
        forward = torch.compile(model) if compile_model else None
        step = ref.SearchStep(model, talphas, forward=forward)

        def run():
            with harness.torch_threads(threads):
                la, lw = step(*t_batch, LR)
                harness.torch_sync(device)
            return float(la), float(lw)

        def memory():
            resident = (harness.torch_tensors_bytes(step.params)
                        + harness.torch_tensors_bytes(model.buffers())
                        + harness.torch_tensors_bytes(step.alpha_list)
                        + harness.torch_optimizer_bytes(step.w_opt)
                        + harness.torch_optimizer_bytes(step.a_opt)
                        + harness.torch_tensors_bytes(t_batch))
            return harness.torch_peak_bytes(run, device, resident)

        return harness.Contender(run, memory, compiles_on_first_call=compile_model)

    contenders.update(harness.torch_contenders(torch_contender, args))
    return harness.compare(config, contenders, reps=args.reps, warmup=args.warmup,
                           images_per_step=2 * b, tolerances=tolerances(),
                           order=args.order)


def controller_batch(bytes_at: dict[int, int], limit: int) -> int:
    """The batch size the paper's controller (`prdarts_jax.search.batch_size.controller`, configs/dl.py: 24 + n·8
    up to 128, target 0.95) settles on when a step at b needs `bytes_at[b]` bytes (linear in b
    through the largest measured size, the controller's own assumption) of `limit`."""
    from prdarts_jax.search.batch_size import controller as batch_size

    b0 = max(bytes_at)
    state = batch_size.initial_state(24, 8, 128)
    while True:
        usage = bytes_at[b0] * state.b / b0 / limit
        new = max(state.b, batch_size.proposed_size(state, usage))
        if new == state.b:
            return state.b
        state = batch_size.BatchSizeState(new, 24, 8, 128)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, allow_abbrev=False,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--channels", type=int, default=16)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--image", type=int, default=32)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--batch", default="32,64",
                    help="comma-separated batch sizes; 'auto' adds the size the batch-size "
                    "controller would pick (from the largest measured size's JAX memory)")
    ap.add_argument("--pools", default="cycle1,heavy", help=f"of {', '.join(POOLS)}")
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps (the 2 parity steps "
                    "included)")
    ap.add_argument("--jax-impls", default="default",
                    help=f"formulation sets to time, of {', '.join(IMPL_SETS)} (default: the "
                    "backend's, which a search uses)")
    ap.add_argument("--fused", action="store_true", help="JAX: one program per step")
    ap.add_argument("--no-search-xla-flags", action="store_true",
                    help="JAX: without the XLA:CPU options a search sets (no YNNPACK fusions: "
                    "prdarts_jax.runtime.xla_options)")
    harness.add_torch_args(ap, "PyTorch device: auto (cuda if JAX runs on a GPU), cpu, cuda")
    args = ap.parse_args()
    if args.order == harness.PROCESSES:
        if "auto" in args.batch.split(","):
            sys.exit("error: --batch auto needs one process for both frameworks: use --order "
                     "blocks or interleaved, or name the batch size")
        harness.run_in_processes(__file__, sys.argv[1:], tolerances(), args.json)
        return
    if not args.no_search_xla_flags:
        xla_options.for_search()    # before the backend starts, as a search does
    device = harness.torch_device(args, jax.default_backend())

    env = harness.environment(device)
    print(" ".join(f"{k}={v}" for k, v in env.items()))
    print(f"search step: C={args.channels}, {args.layers} cells, {args.image}x{args.image}x3, "
          f"{args.classes} classes, reps={args.reps}, warmup={args.warmup}, "
          f"order={args.order}\n", flush=True)
    sizes = [s for s in args.batch.split(",") if s != "auto"]
    rows, parity, memory = [], {}, {}
    for pool in args.pools.split(","):
        pool_sizes = [int(s) for s in sizes]
        for i, b in enumerate(pool_sizes):
            r, p = run_config(args, pool, b, device)
            rows += r
            print(harness.table(r).split("\n", 2)[2], flush=True)
            parity.update({f"{pool} b={b} {k}": v for k, v in p.items()})
            memory[(pool, b)] = next((x.memory_bytes for x in r
                                      if x.framework.startswith("JAX")), None)
            if ("auto" in args.batch.split(",") and i == len(pool_sizes) - 1
                    and memory[(pool, b)] is not None):
                limit = _memory_limit()
                auto = controller_batch({bb: memory[(pool, bb)] for bb in pool_sizes}, limit)
                print(f"  {pool}: the batch-size controller would pick b={auto} "
                      f"({memory[(pool, b)] / harness.MIB:.0f} MiB at b={b} of "
                      f"{limit / harness.MIB:.0f} MiB)", flush=True)
                if auto not in pool_sizes:
                    r, p = run_config(args, pool, auto, device)
                    rows += r
                    print(harness.table(r).split("\n", 2)[2], flush=True)
                    parity.update({f"{pool} b={auto} {k}": v for k, v in p.items()})
    env_after = harness.load_average()
    print()
    print(harness.table(rows))
    print(f"\nload before: {env['load']}, after: {env_after}")
    if args.json:
        harness.write_json(args.json, {**env, "load_after": env_after},
                           rows, {"parity": parity, "args": vars(args)})


def _memory_limit() -> int:
    """What the search's memory probe divides by: the device allocator's limit on a GPU/TPU,
    half the RAM on a CPU."""
    from prdarts_jax.search.batch_size import memory

    stats = memory.device_stats()
    return stats["bytes_limit"] if stats else memory.default_budget()


if __name__ == "__main__":
    harness.restart_host_memory()
    main()
