"""Native CPU kernels, compiled on first use and called from XLA through its FFI.

XLA:CPU emits reductions whose kept axis is the minor one (the channels of NHWC) as scalar
loops. The depthwise convolution's kernel gradient is such a reduction (`primitives`,
`"shift_vjp"`): on the retraining network's shapes it took a quarter of the CPU time of a step.
`native/depthwise_conv.cc` computes it, and the conv itself (used for the forward and the
input gradient, whose flipped kernel it reads in reverse; it can apply a SepConv's ReLU as it
reads its input, and mask the input gradient by that ReLU), with whole SIMD vectors over the
channels and the accumulators in registers, on XLA's own intra-op threads. Kernel gradient,
7x7 taps, 96x32x32x36: 18.1 -> 2.6 ms on 2 cores (3x3 dilated 5.2 -> 1.4 ms).

The source ships with the package and is compiled once per machine with the C++ compiler
(`$CXX`, else `c++`/`g++`/`clang++`) against jaxlib's FFI headers, with `-march=native`; the
library is cached under `$PRDARTS_NATIVE_CACHE` (default `$XDG_CACHE_HOME/prdarts_jax/native`,
i.e. `~/.cache/...`), keyed by the source, the compiler, jaxlib's version and the CPU, so a home
directory shared between different machines is safe. Without a compiler, or if the build fails,
a warning names the cause once and the pure-XLA formulation is used: same results to float32
rounding, only slower.

`PRDARTS_NATIVE_KERNELS`: `auto` (default: build where needed, use on the CPU backend) or `off`.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import functools
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Mapping

import jax
import jax.numpy as jnp
import jaxlib
import numpy as np

ENV = "PRDARTS_NATIVE_KERNELS"
CACHE_ENV = "PRDARTS_NATIVE_CACHE"
NATIVE = Path(__file__).with_name("native")
SOURCES = (NATIVE / "depthwise_conv.cc", NATIVE / "batch_norm.cc", NATIVE / "pool.cc",
           NATIVE / "sgd.cc", NATIVE / "weighted_sum.cc")
HEADERS = (NATIVE / "parallel.h",)
TARGETS = {"prdarts_depthwise_conv": "PrdartsDepthwiseConv",
           "prdarts_depthwise_conv_masked": "PrdartsDepthwiseConvMasked",
           "prdarts_depthwise_kernel_grad": "PrdartsDepthwiseKernelGrad",
           "prdarts_batch_norm_forward": "PrdartsBatchNormForward",
           "prdarts_batch_norm_backward": "PrdartsBatchNormBackward",
           "prdarts_batch_norm_inference": "PrdartsBatchNormInference",
           "prdarts_max_pool3": "PrdartsMaxPool3",
           "prdarts_max_pool3_grad": "PrdartsMaxPool3Grad",
           "prdarts_avg_pool3": "PrdartsAvgPool3",
           "prdarts_avg_pool3_grad": "PrdartsAvgPool3Grad",
           "prdarts_sum_squares": "PrdartsSumSquares",
           "prdarts_sgd_update": "PrdartsSgdUpdate",
           "prdarts_weighted_sum": "PrdartsWeightedSum",
           "prdarts_weighted_sum_grad": "PrdartsWeightedSumGrad"}
FLAGS = ("-O3", "-march=native", "-std=c++17", "-shared", "-fPIC", "-w")
_MODES = {"auto": "auto", "": "auto", "on": "auto", "1": "auto",
          "off": "off", "0": "off", "false": "off", "no": "off"}

log = logging.getLogger(__name__)


class NativeBuildError(RuntimeError):
    """The native kernels could not be compiled or loaded."""


def mode(environ: Mapping[str, str] = os.environ) -> str:
    """`auto` or `off`, from `PRDARTS_NATIVE_KERNELS`; a bad value is a one-line error."""
    value = environ.get(ENV, "auto").strip().lower()
    if value not in _MODES:
        raise ValueError(f"{ENV}={environ[ENV]!r} is not one of auto, off")
    return _MODES[value]


def compiler(environ: Mapping[str, str] = os.environ) -> str | None:
    """The C++ compiler to build with: `$CXX`, else the first of c++, g++, clang++ on PATH."""
    if environ.get("CXX"):
        return shutil.which(environ["CXX"]) or environ["CXX"]
    return next((p for p in map(shutil.which, ("c++", "g++", "clang++")) if p), None)


def cache_dir(environ: Mapping[str, str] = os.environ) -> Path:
    if environ.get(CACHE_ENV):
        return Path(environ[CACHE_ENV])
    base = environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "prdarts_jax" / "native"


def _cpu_signature() -> str:
    """What `-march=native` depends on: the CPU model and its feature flags."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.machine() + platform.processor()
    keep = [ln for ln in lines if ln.split(":")[0].strip() in ("model name", "flags", "Features")]
    return platform.machine() + "\n".join(sorted(set(keep)))


def _compiler_version(cxx: str) -> str:
    try:
        return subprocess.run([cxx, "--version"], capture_output=True, text=True,
                              timeout=60).stdout
    except (OSError, subprocess.SubprocessError) as e:
        raise NativeBuildError(f"C++ compiler {cxx!r} does not run ({e})") from None


def library_path(cxx: str, environ: Mapping[str, str] = os.environ) -> Path:
    """Where the library built by `cxx` from the current source for this CPU is cached."""
    key = hashlib.sha256()
    parts = [f.read_bytes() for f in (*SOURCES, *HEADERS)]
    for part in (*parts, _compiler_version(cxx).encode(), " ".join(FLAGS).encode(),
                 jaxlib.__version__.encode(), _cpu_signature().encode()):
        key.update(part)
        key.update(b"\0")
    return cache_dir(environ) / f"prdarts_native_{key.hexdigest()[:16]}.so"


def build(environ: Mapping[str, str] = os.environ) -> Path:
    """Compiles the kernels (unless cached) and returns the library's path.

    Each source is compiled on a core of its own, then linked (17.7 s -> about 10 s on 2
    cores: a fresh machine's first search waits for it). The library is written to a
    temporary file and renamed, so processes building at the same time never load a
    half-written one.
    """
    cxx = compiler(environ)
    if cxx is None:
        raise NativeBuildError("no C++ compiler found (set CXX, or install g++)")
    path = library_path(cxx, environ)
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=path.parent)
    os.close(fd)
    compile_flags = [f for f in FLAGS if f != "-shared"]
    try:
        with tempfile.TemporaryDirectory() as objects:
            outs = [os.path.join(objects, f"{i}.o") for i in range(len(SOURCES))]
            jobs = [[cxx, *compile_flags, f"-I{jax.ffi.include_dir()}", "-c", str(src), "-o", o]
                    for src, o in zip(SOURCES, outs)]
            workers = max(1, min(len(jobs), os.cpu_count() or 1))
            with concurrent.futures.ThreadPoolExecutor(workers) as pool:
                for done in pool.map(_run, jobs):
                    _check(cxx, done)
            _check(cxx, _run([cxx, *FLAGS, *outs, "-o", tmp]))
        os.replace(tmp, path)
    except (OSError, subprocess.SubprocessError) as e:
        raise NativeBuildError(f"{cxx} did not run ({e})") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def _check(cxx: str, done: subprocess.CompletedProcess) -> None:
    if done.returncode != 0:
        tail = " ".join(done.stderr.strip().splitlines()[-3:])[-400:]
        raise NativeBuildError(f"{cxx} failed (exit {done.returncode}): {tail}")


def _register(path: Path) -> None:
    lib = ctypes.CDLL(str(path))
    for target, symbol in TARGETS.items():
        jax.ffi.register_ffi_target(target, jax.ffi.pycapsule(getattr(lib, symbol)),
                                    platform="cpu")


@functools.cache
def _load() -> str | None:
    """Builds and registers the kernels once per process; returns why not, or None."""
    try:
        path = build()
        try:
            _register(path)
        except (OSError, AttributeError):   # a damaged cached library: build it afresh, once
            path.unlink(missing_ok=True)
            _register(build())
    except (NativeBuildError, OSError) as e:
        return str(e)
    return None


def available() -> bool:
    """Whether the kernels are built and registered (building them now if needed).

    False, with one warning per process naming the cause, when they cannot be built; always
    False when `PRDARTS_NATIVE_KERNELS=off`.
    """
    if mode() == "off":
        return False
    reason = _load()
    if reason is not None:
        _warn_once(reason)
    return reason is None


@functools.cache
def _warn_once(reason: str) -> None:
    log.warning("native CPU kernels unavailable (%s): the depthwise convs (and native pools "
                "and BatchNorms) run as XLA formulations, which are slower; %s=off silences "
                "this", reason, ENV)


def use_for(*arrays: jax.Array) -> bool:
    """Whether a kernel called on these arrays now should be the native one: float32 operands,
    the CPU backend, and `available()`."""
    return (all(a.dtype == jnp.float32 for a in arrays)
            and jax.default_backend() == "cpu" and available())


def depthwise_kernel_grad(x: jax.Array, g: jax.Array, k: int, stride: int, dilation: int,
                          pad: int, relu: bool = False) -> jax.Array:
    """`(k, k, C)` kernel gradient of a depthwise conv of `x` (N, H, W, C), or of relu(x) if
    `relu`, whose output cotangent is `g` (N, Ho, Wo, C), float32, through the native kernel
    (not differentiable: `primitives` wraps it in a custom VJP)."""
    out = jax.ShapeDtypeStruct((k, k, x.shape[-1]), jnp.float32)
    call = jax.ffi.ffi_call("prdarts_depthwise_kernel_grad", out, vmap_method="sequential")
    return call(x, g, k=np.int32(k), stride=np.int32(stride), dilation=np.int32(dilation),
                pad=np.int32(pad), relu=np.int32(relu))


def depthwise_conv(x: jax.Array, w: jax.Array, out_hw: tuple[int, int], stride: int,
                   dilation: int, pad: int, flip: bool = False, relu: bool = False
                   ) -> jax.Array:
    """Depthwise conv of `x` (N, H, W, C), or of relu(x) if `relu`, with `w` (k, k, C), or
    with `w[::-1, ::-1]` if `flip` (read in reverse: no kernel of XLA's per call for either),
    zero padding `pad` on every side, output (N, *out_hw, C), float32, through the native
    kernel (not differentiable: `primitives` wraps it in a custom VJP)."""
    out = jax.ShapeDtypeStruct((x.shape[0], *out_hw, x.shape[-1]), jnp.float32)
    call = jax.ffi.ffi_call("prdarts_depthwise_conv", out, vmap_method="sequential")
    return call(x, w, stride=np.int32(stride), dilation=np.int32(dilation), pad=np.int32(pad),
                flip=np.int32(flip), relu=np.int32(relu))


def depthwise_conv_masked(x: jax.Array, w: jax.Array, mask: jax.Array, stride: int,
                          dilation: int, pad: int, flip: bool = False) -> jax.Array:
    """`depthwise_conv(x, w, ...)` where `mask` (its output's shape) is > 0, zero elsewhere:
    the input gradient through a ReLU whose input is `mask`, in the conv's own pass."""
    out = jax.ShapeDtypeStruct(mask.shape, jnp.float32)
    call = jax.ffi.ffi_call("prdarts_depthwise_conv_masked", out, vmap_method="sequential")
    return call(x, w, mask, stride=np.int32(stride), dilation=np.int32(dilation),
                pad=np.int32(pad), flip=np.int32(flip))


def batch_norm_forward(x: jax.Array, ra_mean: jax.Array, ra_var: jax.Array, momentum: float,
                       eps: float) -> tuple[jax.Array, ...]:
    """Training-mode BatchNorm without affine of `x` (M, C), float32, through the native
    kernel: (y, mean, 1/sqrt(var + eps), the running mean and unbiased running variance updated
    with `momentum` (the old value's weight)). Not differentiable: `kernels/batch_norm.py` wraps
    it in a custom VJP."""
    c = x.shape[-1]
    stat = jax.ShapeDtypeStruct((c,), jnp.float32)
    call = jax.ffi.ffi_call("prdarts_batch_norm_forward",
                            (jax.ShapeDtypeStruct(x.shape, jnp.float32), stat, stat, stat, stat),
                            vmap_method="sequential")
    return tuple(call(x, ra_mean, ra_var, momentum=np.float32(momentum), eps=np.float32(eps)))


def batch_norm_backward(g: jax.Array, x: jax.Array, mean: jax.Array, inv: jax.Array
                        ) -> jax.Array:
    """The input gradient of `batch_norm_forward`'s y for the cotangent `g` (M, C)."""
    call = jax.ffi.ffi_call("prdarts_batch_norm_backward",
                            jax.ShapeDtypeStruct(x.shape, jnp.float32), vmap_method="sequential")
    return call(g, x, mean, inv)


def batch_norm_inference(x: jax.Array, ra_mean: jax.Array, ra_var: jax.Array, eps: float
                         ) -> jax.Array:
    """Evaluation-mode BatchNorm without affine of `x` (M, C), float32, through the native
    kernel: (x - ra_mean) / sqrt(ra_var + eps). Not differentiable: `kernels/batch_norm.py`
    wraps it in a custom VJP."""
    call = jax.ffi.ffi_call("prdarts_batch_norm_inference",
                            jax.ShapeDtypeStruct(x.shape, jnp.float32), vmap_method="sequential")
    return call(x, ra_mean, ra_var, eps=np.float32(eps))


def pool3(kind: str, x: jax.Array, stride: int) -> jax.Array:
    """3x3 `kind` ("max" or "avg") pool of `x` (N, H, W, C), padding 1, float32, through the
    native kernel (padding never wins a max and is not counted in an average). Not
    differentiable: `primitives` wraps it in a custom VJP."""
    n, h, w, c = x.shape
    out = jax.ShapeDtypeStruct((n, (h - 1) // stride + 1, (w - 1) // stride + 1, c), jnp.float32)
    call = jax.ffi.ffi_call(f"prdarts_{kind}_pool3", out, vmap_method="sequential")
    return call(x, stride=np.int32(stride))


def pool3_grad(kind: str, x: jax.Array, g: jax.Array, stride: int) -> jax.Array:
    """The input gradient of `pool3(kind, x, stride)` for the cotangent `g`; a max's goes to the
    first maximal tap of each window (row-major)."""
    call = jax.ffi.ffi_call(f"prdarts_{kind}_pool3_grad",
                            jax.ShapeDtypeStruct(x.shape, jnp.float32), vmap_method="sequential")
    return call(x, g, stride=np.int32(stride))


def sum_squares(grads: list[jax.Array]) -> jax.Array:
    """The sum of the squares of every element of `grads` (float32 leaves), summed in double
    precision by the native kernel; a float32 scalar."""
    call = jax.ffi.ffi_call("prdarts_sum_squares", jax.ShapeDtypeStruct((), jnp.float32),
                            vmap_method="sequential")
    return call(*grads)


def sgd_update(lr: jax.Array, norm: jax.Array, params: list[jax.Array],
               momenta: list[jax.Array], grads: list[jax.Array], *, momentum: float,
               weight_decay: float, grad_clip: float) -> tuple[list[jax.Array], list[jax.Array]]:
    """(new params, new momenta) of one SGD step of these leaves, float32, through the native
    kernel (``native/sgd.cc``: clipped by the global norm `norm` of all gradients, coupled weight
    decay, momentum, then ``p - lr * m``); the params and momenta are updated in place (aliased).
    Not differentiable."""
    n = len(params)
    out = [jax.ShapeDtypeStruct(a.shape, jnp.float32) for a in (*params, *momenta)]
    call = jax.ffi.ffi_call("prdarts_sgd_update", out, vmap_method="sequential",
                            input_output_aliases={2 + i: i for i in range(2 * n)})
    res = call(jnp.asarray(lr, jnp.float32), norm, *params, *momenta, *grads,
               momentum=np.float32(momentum), weight_decay=np.float32(weight_decay),
               grad_clip=np.float32(grad_clip))
    return list(res[:n]), list(res[n:])


def weighted_sum(w: jax.Array, ys: list[jax.Array]) -> jax.Array:
    """Σ_i w_i · ys_i (float32, the ys alike, w of shape (n,)) through the native kernel. Not
    differentiable: `kernels/weighted_sum.py` wraps it in a custom VJP."""
    call = jax.ffi.ffi_call("prdarts_weighted_sum", jax.ShapeDtypeStruct(ys[0].shape, jnp.float32),
                            vmap_method="sequential")
    return call(w, *ys)


def weighted_sum_grad(w: jax.Array, g: jax.Array, ys: list[jax.Array]
                      ) -> tuple[jax.Array, list[jax.Array]]:
    """(dw, [dy_i]) of `weighted_sum(w, ys)` for the cotangent `g`: dw_i = Σ g·ys_i (summed in
    double precision), dy_i = w_i · g."""
    out = [jax.ShapeDtypeStruct(w.shape, jnp.float32),
           *(jax.ShapeDtypeStruct(g.shape, jnp.float32) for _ in ys)]
    res = jax.ffi.ffi_call("prdarts_weighted_sum_grad", out, vmap_method="sequential")(w, g, *ys)
    return res[0], list(res[1:])
