"""Times every formulation of the primitives in ``prdarts_jax.kernels.primitives``.

    python benchmarks/ops.py [--batch 32 --size 32 --channels 16 --repeats 20]

For each op kind and formulation, measures the jitted forward pass and the
forward+backward pass (output plus its VJP w.r.t. input and kernel, for a
random cotangent passed in as an argument) in milliseconds:
median over ``--repeats`` timed calls after warm-up, each ended with
``block_until_ready``.  Prints a Markdown table, then the backend's default
formulation per primitive next to the one fastest (forward+backward) here.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from collections import defaultdict

import jax
import jax.numpy as jnp

from prdarts_jax.kernels import primitives as P

# (label, primitive, kernel size, kwargs)
OPS = [
    ("dw 1x1", "depthwise_conv", 1, {}),
    ("dw 3x3", "depthwise_conv", 3, {}),
    ("dw 5x5", "depthwise_conv", 5, {}),
    ("dw 7x7", "depthwise_conv", 7, {}),
    ("dil 3x3 d2", "depthwise_conv", 3, {"dilation": 2}),
    ("dil 5x5 d2", "depthwise_conv", 5, {"dilation": 2}),
    ("dw 3x3 s2", "depthwise_conv", 3, {"stride": 2}),
    ("dil 5x5 d2 s2", "depthwise_conv", 5, {"dilation": 2, "stride": 2}),
    ("max 3x3", "max_pool3", None, {}),
    ("max 3x3 s2", "max_pool3", None, {"stride": 2}),
    ("avg 3x3", "avg_pool3", None, {}),
    ("avg 3x3 s2", "avg_pool3", None, {"stride": 2}),
]


def _time(fn, args, repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def _fwd_bwd(f, primals, ct):
    """Output and its VJP with cotangent ``ct`` (an argument, so nothing constant-folds)."""
    y, vjp = jax.vjp(f, *primals)
    return y, vjp(ct)


def _variants(primitive: str, blocks: list[int]):
    """(name, function of (x, w, **kwargs)) for each formulation to time."""
    if primitive == "depthwise_conv":
        out = [(i, functools.partial(P.depthwise_conv, impl=i)) for i in P.IMPLS[primitive]]
        for b in blocks:
            def f(x, w, *, stride=1, dilation=1, b=b):
                pad = ((w.shape[0] - 1) * dilation) // 2
                return P._dw_blockdiag(x, w, stride, dilation, pad, block=b)
            out.append((f"blockdiag B={b}", f))
        return out
    fn = getattr(P, primitive)
    return [(i, lambda x, w, _i=i, **kw: fn(x, impl=_i, **kw)) for i in P.IMPLS[primitive]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--channels", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--blocks", default="", help="extra blockdiag block sizes to time, e.g. 4,32")
    ap.add_argument("--only", default="", help="substring filter on op labels")
    ap.add_argument("--impls", default="", help="comma-separated formulations to time (default: all)")
    args = ap.parse_args()
    blocks = [int(b) for b in args.blocks.split(",") if b]

    key_x, key_w, key_g = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(key_x, (args.batch, args.size, args.size, args.channels), jnp.float32)

    print(f"backend={jax.default_backend()} devices={jax.devices()} jax={jax.__version__}")
    print(f"batch={args.batch} size={args.size} channels={args.channels} repeats={args.repeats} "
          f"BLOCK_SIZE={P.BLOCK_SIZE}\n")
    print("| op | impl | fwd ms | fwd+bwd ms |")
    print("|---|---|---:|---:|")

    wins: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    totals: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for label, primitive, k, kw in OPS:
        if args.only and args.only not in label:
            continue
        w = jax.random.normal(key_w, (k or 1, k or 1, args.channels), jnp.float32)
        y_shape = jax.eval_shape(lambda a, b: _variants(primitive, [])[0][1](a, b, **kw), x, w).shape
        g = jax.random.normal(key_g, y_shape, jnp.float32)
        row: dict[str, float] = {}
        for name, f in _variants(primitive, blocks):
            if args.impls and name.split()[0] not in args.impls.split(","):
                continue
            fwd = jax.jit(lambda a, b, f=f: f(a, b, **kw))
            if primitive == "depthwise_conv":
                bwd = jax.jit(lambda a, b, ct, f=f: _fwd_bwd(lambda u, v: f(u, v, **kw), (a, b), ct))
            else:
                bwd = jax.jit(lambda a, b, ct, f=f: _fwd_bwd(lambda u: f(u, b, **kw), (a,), ct))
            t_f = _time(fwd, (x, w), args.repeats)
            t_b = _time(bwd, (x, w, g), args.repeats)
            row[name] = t_b
            print(f"| {label} | {name} | {t_f:.2f} | {t_b:.2f} |", flush=True)
        public = {n: t for n, t in row.items() if n in P.IMPLS[primitive]}
        if not public:
            continue
        wins[primitive][min(public, key=public.get)] += 1
        for n, t in public.items():
            totals[primitive][n] += t

    print("\n| primitive | backend default | fastest fwd+bwd (wins over op kinds) | total fwd+bwd ms per impl |")
    print("|---|---|---|---|")
    for primitive in wins:
        best = max(wins[primitive], key=lambda n: (wins[primitive][n], -totals[primitive][n]))
        w_str = ", ".join(f"{n} {c}" for n, c in sorted(wins[primitive].items(), key=lambda t: -t[1]))
        t_str = ", ".join(f"{n} {t:.1f}" for n, t in sorted(totals[primitive].items(), key=lambda t: t[1]))
        print(f"| {primitive} | {P.default_impl(primitive)} | {best} ({w_str}) | {t_str} |")


if __name__ == "__main__":
    main()
