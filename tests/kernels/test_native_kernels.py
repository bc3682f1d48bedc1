import os
import subprocess
import sys

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prdarts_jax.kernels import native_kernels, primitives

needs_compiler = pytest.mark.skipif(native_kernels.compiler() is None,
                                    reason="no C++ compiler on this machine")


def _reference(x, g, k, stride, dilation, pad):
    return primitives._dw_shift_dw(x, g, k, stride, dilation, pad)


def _operands(n, h, c, k, stride, dilation, seed=0):
    pad = dilation * (k - 1) // 2
    ho = primitives.out_size(h, k, stride=stride, dilation=dilation)
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.standard_normal((n, h, h, c)), jnp.float32)
    g = jnp.asarray(rng.standard_normal((n, ho, ho, c)), jnp.float32)
    return x, g, pad


@needs_compiler
@pytest.mark.parametrize("n,h,c,k,stride,dilation", [
    (2, 8, 4, 3, 1, 1),      # fewer channels than a SIMD vector
    (3, 7, 20, 5, 2, 1),     # stride 2 on an odd size, channels not a whole vector
    (2, 9, 36, 3, 1, 2),     # dilated
    (1, 6, 50, 7, 1, 1),     # one image, more channels than one block of vectors
    (4, 5, 17, 1, 1, 1),     # 1x1
    (2, 11, 6, 9, 1, 1),     # a kernel size without a specialised loop
    (20, 4, 16, 3, 2, 2),    # more images than blocks
])
def test_kernel_gradient_matches_the_xla_reduction(n, h, c, k, stride, dilation):
    x, g, pad = _operands(n, h, c, k, stride, dilation)
    assert native_kernels.available()
    got = jax.jit(native_kernels.depthwise_kernel_grad, static_argnums=(2, 3, 4, 5))(
        x, g, k, stride, dilation, pad)
    want = _reference(x, g, k, stride, dilation, pad)
    assert got.shape == (k, k, c)
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5 * float(jnp.abs(want).max()))
    again = native_kernels.depthwise_kernel_grad(x, g, k, stride, dilation, pad)
    np.testing.assert_array_equal(got, again)   # fixed blocks: the same bits on every call


@needs_compiler
@pytest.mark.parametrize("n,h,c,k,stride,dilation", [
    (2, 8, 4, 3, 1, 1),
    (3, 7, 20, 5, 2, 1),     # stride 2, odd size: output widths not a multiple of 4
    (2, 9, 36, 3, 1, 2),
    (1, 6, 50, 7, 1, 1),     # channels past two vectors
    (4, 5, 17, 1, 1, 1),
    (2, 11, 6, 9, 1, 1),
])
def test_conv_matches_the_tap_sums(n, h, c, k, stride, dilation):
    x, _, pad = _operands(n, h, c, k, stride, dilation)
    w = jnp.asarray(np.random.default_rng(3).standard_normal((k, k, c)), jnp.float32)
    ho = primitives.out_size(h, k, stride=stride, dilation=dilation)
    got = native_kernels.depthwise_conv(x, w, (ho, ho), stride, dilation, pad)
    want = primitives._dw_shift(x, w, stride, dilation, pad)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@needs_compiler
@pytest.mark.parametrize("k,dilation", [(3, 1), (5, 2), (7, 1), (9, 1)])
def test_a_flipped_conv_is_the_conv_with_the_reversed_kernel_to_the_bit(k, dilation):
    """`flip` reads the kernel in reverse (the input gradient's kernel) instead of XLA
    reversing it into a buffer first: the same products in the same order."""
    assert native_kernels.available()
    x, _, pad = _operands(2, 9, 20, k, 1, dilation)
    w = jnp.asarray(np.random.default_rng(4).standard_normal((k, k, 20)), jnp.float32)
    ho = primitives.out_size(9, k, dilation=dilation)
    got = native_kernels.depthwise_conv(x, w, (ho, ho), 1, dilation, pad, flip=True)
    want = native_kernels.depthwise_conv(x, w[::-1, ::-1], (ho, ho), 1, dilation, pad)
    np.testing.assert_array_equal(got, want)
    hlo = jax.jit(jax.grad(lambda x: jnp.sum(primitives.depthwise_conv(
        x, w, dilation=dilation, impl="shift_vjp") ** 2))).lower(x).compile().as_text()
    assert " reverse(" not in hlo   # the input gradient flips nothing in XLA


@needs_compiler
def test_shift_vjp_uses_the_native_kernel_on_the_cpu_and_stays_differentiable():
    x, g, pad = _operands(2, 6, 5, 3, 1, 1, seed=1)
    w = jnp.asarray(np.random.default_rng(2).standard_normal((3, 3, 5)), jnp.float32)

    def loss(x, w, impl):
        return jnp.sum(primitives.depthwise_conv(x, w, impl=impl) * g)

    step = jax.value_and_grad(loss, argnums=(0, 1))
    text = jax.jit(step, static_argnums=2).lower(x, w, "shift_vjp").as_text()
    assert text.count("prdarts_depthwise_conv") == 2   # forward and input gradient
    assert text.count("prdarts_depthwise_kernel_grad") == 1
    chex.assert_trees_all_close(step(x, w, "shift_vjp"), step(x, w, "grouped"),
                                rtol=1e-5, atol=1e-5)
    # second order: the native kernel's own VJP is the XLA formulation's
    second = jax.grad(lambda x: jnp.sum(jnp.square(jax.grad(loss, argnums=1)(x, w, "shift_vjp"))))
    want2 = jax.grad(lambda x: jnp.sum(jnp.square(jax.grad(loss, argnums=1)(x, w, "grouped"))))
    np.testing.assert_allclose(second(x), want2(x), rtol=1e-4, atol=1e-4)


@needs_compiler
@pytest.mark.parametrize("n,h,c,k,dilation", [
    (2, 8, 5, 3, 1),     # the reduction cells' stride-2 convs
    (3, 7, 20, 5, 1),    # odd size
    (2, 8, 6, 5, 2),     # dilated
    (1, 4, 3, 7, 1),     # kernel wider than the input
    (2, 2, 4, 3, 1),     # one output pixel
])
def test_strided_input_gradient_is_a_native_conv_of_the_dilated_cotangent(n, h, c, k, dilation):
    """A stride-2 conv's input gradient: one padding kernel and the native conv, instead of
    k*k shifted slices with the grouped conv as their fallback (both compiled)."""
    x, g, _ = _operands(n, h, c, k, 2, dilation, seed=4)
    w = jnp.asarray(np.random.default_rng(5).standard_normal((k, k, c)), jnp.float32)

    def loss(x, w, impl):
        return jnp.sum(primitives.depthwise_conv(x, w, stride=2, dilation=dilation, impl=impl) * g)

    step = jax.value_and_grad(loss, argnums=(0, 1))
    text = jax.jit(step, static_argnums=2).lower(x, w, "shift_vjp").as_text()
    assert text.count("prdarts_depthwise_conv") == 2   # forward and input gradient
    assert "stablehlo.case" not in text and "stablehlo.if" not in text
    chex.assert_trees_all_close(step(x, w, "shift_vjp"), step(x, w, "grouped"),
                                rtol=1e-5, atol=1e-5)


@needs_compiler
@pytest.mark.parametrize("n,h,c,k,stride,dilation", [
    (2, 8, 5, 3, 1, 1),
    (3, 7, 20, 5, 2, 1),     # stride 2: the masked conv of the dilated cotangent
    (2, 9, 6, 5, 1, 2),      # dilated
    (2, 6, 36, 7, 1, 1),
])
def test_a_relu_input_is_applied_and_masked_by_the_native_kernels_to_the_bit(
        n, h, c, k, stride, dilation):
    """`relu_input`: the conv reads max(x, 0), the input gradient is masked by x > 0 and the
    kernel gradient reads max(x, 0), all inside the native calls: the same bits as ReLU then
    conv, with no ReLU or mask kernel of XLA's left."""
    x, g, _ = _operands(n, h, c, k, stride, dilation, seed=6)
    x = x.at[:, 0].set(0.0)   # exact zeros: the ReLU's gradient there is 0, as jax.nn.relu's
    w = jnp.asarray(np.random.default_rng(7).standard_normal((k, k, c)), jnp.float32)

    def step(x, w, fused):
        def loss(x, w):
            y = (primitives.depthwise_conv(x, w, stride=stride, dilation=dilation,
                                           impl="shift_vjp", relu_input=True) if fused else
                 primitives.depthwise_conv(jax.nn.relu(x), w, stride=stride, dilation=dilation,
                                           impl="shift_vjp"))
            return jnp.sum(y * g), y
        return jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(x, w)

    fused = jax.jit(step, static_argnums=2)
    got, want = fused(x, w, True), fused(x, w, False)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_array_equal(a, b)
    hlo = fused.lower(x, w, True).compile().as_text()
    assert "maximum(" not in hlo and "select(" not in hlo
    assert "prdarts_depthwise_conv_masked" in hlo
    # the XLA formulations (no native kernels for the grouped conv) agree, and so does the
    # second order, through the native kernels' own VJPs
    ref = jax.value_and_grad(lambda x, w: jnp.sum(primitives.depthwise_conv(
        jax.nn.relu(x), w, stride=stride, dilation=dilation, impl="grouped") * g),
        argnums=(0, 1))(x, w)
    chex.assert_trees_all_close((got[0][0], got[1]), ref, rtol=1e-5, atol=1e-4)

    def second(impl, fused):
        def loss(x, w):
            xin = x if fused else jax.nn.relu(x)
            return jnp.sum(primitives.depthwise_conv(xin, w, stride=stride, dilation=dilation,
                                                     impl=impl, relu_input=fused) * g)
        return jax.grad(lambda x: jnp.sum(jnp.square(jax.grad(loss, argnums=1)(x, w))))(x)

    np.testing.assert_allclose(second("shift_vjp", True), second("grouped", False),
                               rtol=1e-4, atol=1e-3)


@needs_compiler
def test_the_masked_conv_is_differentiable_like_its_xla_formulation():
    x, g, pad = _operands(2, 6, 5, 3, 1, 1, seed=8)
    w = jnp.asarray(np.random.default_rng(9).standard_normal((3, 3, 5)), jnp.float32)

    def f(g, w, masked):
        return jnp.sum(jnp.square(masked(g, w, x, 1, pad)))

    xla = lambda g, w, x, d, p: primitives._relu_mask(  # noqa: E731
        x, primitives._dw_shift(g, w[::-1, ::-1], 1, d, p))
    got = jax.grad(f, argnums=(0, 1))(g, w, primitives._dw_native_masked)
    want = jax.grad(f, argnums=(0, 1))(g, w, xla)
    chex.assert_trees_all_close(got, want, rtol=1e-5, atol=1e-4)


def test_off_switch_keeps_the_xla_reduction(monkeypatch):
    monkeypatch.setenv(native_kernels.ENV, "off")
    x, g, _ = _operands(2, 6, 5, 3, 1, 1)
    w = jnp.ones((3, 3, 5), jnp.float32)
    assert not native_kernels.use_for(x, g)
    text = jax.jit(jax.grad(lambda x, w: jnp.sum(
        primitives.depthwise_conv(x, w, impl="shift_vjp") * g), argnums=1)).lower(x, w).as_text()
    assert "prdarts_depthwise" not in text


def test_only_float32_operands_use_the_native_kernel():
    x = jnp.ones((1, 4, 4, 3), jnp.bfloat16)
    assert not native_kernels.use_for(x, x)


def test_bad_setting_is_a_one_line_error(monkeypatch):
    monkeypatch.setenv(native_kernels.ENV, "sometimes")
    with pytest.raises(ValueError, match="PRDARTS_NATIVE_KERNELS='sometimes' is not one of"):
        native_kernels.mode()


@needs_compiler
def test_build_is_cached_per_source_compiler_and_cpu(tmp_path):
    env = {**os.environ, native_kernels.CACHE_ENV: str(tmp_path)}
    path = native_kernels.build(env)
    assert path.parent == tmp_path and path.suffix == ".so"
    stamp = path.stat().st_mtime_ns
    assert native_kernels.build(env) == path and path.stat().st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir()] == [path.name]   # no temporary file left


def test_a_failing_compiler_is_a_build_error_naming_it(tmp_path):
    env = {**os.environ, native_kernels.CACHE_ENV: str(tmp_path), "CXX": "/bin/false"}
    with pytest.raises(native_kernels.NativeBuildError, match="/bin/false"):
        native_kernels.build(env)
    assert list(tmp_path.iterdir()) == []


def test_without_a_compiler_the_depthwise_gradient_falls_back_with_one_warning(tmp_path):
    """In a fresh process whose compiler fails: a warning naming the cause, then the XLA
    reduction, with the same gradient."""
    code = """
import logging, jax, jax.numpy as jnp, numpy as np
logging.basicConfig(level=logging.WARNING)
from prdarts_jax.kernels import native_kernels
from prdarts_jax.kernels import primitives
x = jnp.asarray(np.random.default_rng(0).standard_normal((2, 6, 6, 5)), jnp.float32)
w = jnp.asarray(np.random.default_rng(1).standard_normal((3, 3, 5)), jnp.float32)
f = lambda w, impl: jnp.sum(primitives.depthwise_conv(x, w, impl=impl) ** 2)
a = jax.grad(f)(w, "shift_vjp"); b = jax.grad(f)(w, "shift_vjp"); c = jax.grad(f)(w, "grouped")
np.testing.assert_allclose(a, c, rtol=1e-5, atol=1e-5)
print("native", native_kernels.available())
"""
    env = {**os.environ, native_kernels.CACHE_ENV: str(tmp_path), "CXX": "/bin/false",
           "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "native False" in done.stdout
    warnings = [ln for ln in done.stderr.splitlines() if "native CPU kernels unavailable" in ln]
    assert len(warnings) == 1 and "/bin/false" in warnings[0]


@needs_compiler
def test_a_damaged_cached_library_is_rebuilt(tmp_path):
    env = {**os.environ, native_kernels.CACHE_ENV: str(tmp_path)}
    path = native_kernels.build(env)
    path.write_bytes(b"not a library")
    code = ("from prdarts_jax.kernels import native_kernels; import sys; "
            "sys.exit(0 if native_kernels.available() else 1)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**env, "JAX_PLATFORMS": "cpu"}, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert path.read_bytes()[:4] == b"\x7fELF"
