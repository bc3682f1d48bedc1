"""The PyTorch reference of the benchmarks (benchmarks/torch_reference.py) computes what
prdarts_jax computes: on the same weights (ported from JAX) the same losses, α gradients and BN
statistics of the search supernet (cycle-1 and heavy pools) and the same losses and logits of
the final network; and its first-order step (α step, then weight step) updates α and the
weights as the JAX step does.

Tiny networks (C=4, 3 cells, 8×8 inputs, batch 4). JAX runs op by op (`jax.disable_jit`): for
networks this small that costs no more than compiling them, and the ops are the same.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import flax.linen
import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from benchmarks import jax_steps  # noqa: E402
from benchmarks import torch_reference as ref  # noqa: E402
from prdarts_jax.kernels import primitives  # noqa: E402
from prdarts_jax.models.network import Network  # noqa: E402
from prdarts_jax.models.ops import BatchNorm  # noqa: E402
from prdarts_jax.models.supernet import Supernet, init_alphas  # noqa: E402
from prdarts_jax.space.genotypes import PUBLISHED  # noqa: E402
from prdarts_jax.space.opspec import OpSpec  # noqa: E402

POOLS = {
    "cycle1": ("maxpool3", "avgpool3", "skip", "conv_k3_d1"),
    "heavy": ("maxpool3", "skip", "conv_k3_d1_m1", "conv_k5_d1_m1", "conv_k7_d1", "conv_k5_d2"),
}
C, LAYERS, IMAGE, BATCH, CLASSES = 4, 3, 8, 4, 10
LOSS_RTOL = 1e-5
GRAD_RTOL = 1e-4      # max |Δg| / max |g| over all α entries


@pytest.fixture(autouse=True)
def _eager_native_ops():
    """Op-by-op JAX with the native formulations (the primitives' formulations are checked
    against each other in test_primitives.py)."""
    with jax.disable_jit(), primitives.use_impls("grouped", "reduce_window"):
        yield


def _batch(seed: int):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((BATCH, IMAGE, IMAGE, 3)).astype(np.float32)
    y = rng.integers(0, CLASSES, BATCH)
    return (jnp.asarray(x), jnp.asarray(y, jnp.int32),
            torch.from_numpy(x.transpose(0, 3, 1, 2).copy()), torch.from_numpy(y))


def _supernet(pool: str):
    ops = tuple(OpSpec.parse(o) for o in POOLS[pool])
    edges = (ops,) * 14
    net = Supernet(edges, edges, CLASSES, c=C, layers=LAYERS)
    alphas = init_alphas(jax.random.PRNGKey(1), edges, edges, scale=0.5)
    variables = jax_steps.random_variables(net, (2, IMAGE, IMAGE, 3), (alphas, False), seed=2)
    model = ref.SearchNetwork(edges, edges, CLASSES, C, LAYERS)
    ref.load_jax_variables(model, variables)
    return net, alphas, variables, model.train()


def _max_rel(a, b) -> float:
    a, b = np.concatenate([np.ravel(v) for v in a]), np.concatenate([np.ravel(v) for v in b])
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def _check_loss_alpha_gradient_and_statistics(jstep, state, x, y, model, talphas, tx, ty):
    """The α-step gradient program against torch on the same weights: loss, α gradient and
    the BN running statistics that the training-mode forward updates (unbiased variance)."""
    grads, stats, loss = jstep.alpha_gradient(state, x, y)
    flat = [a for t in ref.CELL_TYPES for a in talphas[t]]
    tloss = torch.nn.functional.cross_entropy(model(tx, talphas), ty)
    tgrads = torch.autograd.grad(tloss, flat)
    np.testing.assert_allclose(float(loss), float(tloss.detach()), rtol=LOSS_RTOL)
    jgrads = [np.asarray(g) for t in ref.CELL_TYPES for g in grads[t]]
    assert _max_rel(jgrads, [g.numpy() for g in tgrads]) < GRAD_RTOL
    torch_stats = model.state_dict()
    for name, value in ref.torch_state_dict({"batch_stats": stats}).items():
        np.testing.assert_allclose(value.numpy(), torch_stats[name].numpy(), rtol=1e-5,
                                   atol=1e-6, err_msg=name)


@pytest.mark.parametrize("pool", list(POOLS))
def test_search_loss_alpha_gradient_and_statistics_match(pool):
    net, alphas, variables, model = _supernet(pool)
    x, y, tx, ty = _batch(0)
    jstep = jax_steps.SearchStep(net)
    _check_loss_alpha_gradient_and_statistics(jstep, jstep.init_state(variables, alphas), x, y,
                                              model, ref.make_alphas(alphas), tx, ty)


class _ToyFlax(flax.linen.Module):
    """A stand-in supernet with the same interface, to check the step logic in seconds: two
    α-weighted branches per cell type, a BatchNorm, a classifier."""

    @flax.linen.compact
    def __call__(self, x, alphas, train):
        nn = flax.linen
        w, v = jax.nn.softmax(alphas["normal"][0]), jax.nn.softmax(alphas["reduce"][0])
        h = w[0] * nn.Dense(8, name="branch_0")(x) + w[1] * nn.relu(nn.Dense(8, name="branch_1")(x))
        h = v[0] * h + v[1] * nn.Dense(8, name="branch_2")(h)
        h = BatchNorm(False, name="bn")(h[:, None, None, :], train)[:, 0, 0]
        return nn.Dense(CLASSES, name="classifier")(h)


class _ToyTorch(torch.nn.Module):
    def __init__(self, features: int):
        super().__init__()
        self.branch_0 = torch.nn.Linear(features, 8)
        self.branch_1 = torch.nn.Linear(features, 8)
        self.branch_2 = torch.nn.Linear(8, 8)
        self.bn = ref.batch_norm(8, False)
        self.classifier = torch.nn.Linear(8, CLASSES)

    def forward(self, x, alphas):
        w, v = alphas["normal"][0].softmax(0), alphas["reduce"][0].softmax(0)
        h = w[0] * self.branch_0(x) + w[1] * torch.relu(self.branch_1(x))
        h = v[0] * h + v[1] * self.branch_2(h)
        return self.classifier(self.bn(h[:, :, None, None])[:, :, 0, 0])


@pytest.mark.parametrize("scale", [1.0, 30.0])   # 30: the gradients get clipped
def test_first_order_steps_match(scale):
    """α step (Adam, coupled weight decay, clipping) then weight step (SGD with momentum,
    coupled weight decay, clipping), three times: the same losses, α and weights. The two
    step implementations run on a toy supernet; the networks are checked above."""
    features = 6
    net = _ToyFlax()
    alphas = {"normal": [jnp.asarray([0.3, -0.2])], "reduce": [jnp.asarray([0.1, 0.4])]}
    variables = jax_steps.random_variables(net, (2, features), (alphas, False), seed=4)
    model = _ToyTorch(features)
    ref.load_jax_variables(model, variables)
    jstep = jax_steps.SearchStep(net)
    state = jstep.init_state(variables, alphas)
    tstep = ref.SearchStep(model.train(), ref.make_alphas(alphas))
    rng = np.random.default_rng(5)
    for _ in range(3):
        xa, xw = (scale * rng.standard_normal((BATCH, features)).astype(np.float32)
                  for _ in range(2))
        ya, yw = (rng.integers(0, CLASSES, BATCH) for _ in range(2))
        state, losses = jstep(state, jnp.asarray(xa), jnp.asarray(ya), jnp.asarray(xw),
                              jnp.asarray(yw), 0.1)
        tlosses = tstep(torch.from_numpy(xa), torch.from_numpy(ya), torch.from_numpy(xw),
                        torch.from_numpy(yw), 0.1)
        np.testing.assert_allclose([float(v) for v in losses], [float(v) for v in tlosses],
                                   rtol=1e-5)
    ja = [np.asarray(a) for t in ref.CELL_TYPES for a in state["alphas"][t]]
    np.testing.assert_allclose(np.concatenate(ja),
                               torch.cat([a.detach() for a in tstep.alpha_list]).numpy(),
                               rtol=1e-5, atol=1e-7)
    ported = ref.torch_state_dict({"params": state["params"], "batch_stats": state["batch_stats"]})
    for name, value in model.state_dict().items():
        if name in ported:
            np.testing.assert_allclose(ported[name].numpy(), value.numpy(), rtol=1e-5,
                                       atol=1e-6, err_msg=name)


def test_final_network_losses_match():
    """DL2 at C=4, 3 cells: the training loss (CE + 0.4·aux CE, drop path off) and the
    inference logits (running statistics) agree."""
    genotype = PUBLISHED["DL2"]
    net = Network(genotype, CLASSES, c=C, layers=LAYERS, auxiliary=True)
    variables = jax_steps.random_variables(net, (2, IMAGE, IMAGE, 3), (True, 0.0), seed=3)
    model = ref.FinalNetwork(genotype, CLASSES, C, LAYERS, auxiliary=True, image_size=IMAGE)
    ref.load_jax_variables(model, variables)
    x, y, tx, ty = _batch(3)
    jstep = jax_steps.TrainStep(net)
    loss, stats = jstep.loss_fn(variables["params"], variables["batch_stats"], x, y,
                                jax.random.PRNGKey(0), 0.0)
    tloss = ref.TrainStep(model.train()).loss(tx, ty, 0.0)
    np.testing.assert_allclose(float(loss), float(tloss.detach()), rtol=LOSS_RTOL)

    ref.load_jax_variables(model, {"params": variables["params"], "batch_stats": stats})
    logits, _ = net.apply({"params": variables["params"], "batch_stats": stats}, x, False)
    with torch.no_grad():
        tlogits, _ = model.eval()(tx)
    np.testing.assert_allclose(np.asarray(logits), tlogits.numpy(), rtol=1e-4, atol=1e-5)


def test_benchmark_steps_need_neither_tfds_nor_ml_collections():
    """benchmarks/jax_steps.py uses bilevel's optimizers and must still import, and build a
    search step, on a GPU machine without tensorflow-datasets and ml_collections."""
    code = ("import sys; sys.modules['tensorflow_datasets'] = None; "
            "sys.modules['ml_collections'] = None; "
            "from benchmarks import jax_steps; from prdarts_jax.models.supernet import Supernet; "
            "from prdarts_jax.space.opspec import OpSpec; edges = ((OpSpec.parse('skip'),),) * 14; "
            "jax_steps.SearchStep(Supernet(edges, edges, 10, c=4, layers=3)); "
            "print('built')")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("built")


def test_processes_order_times_each_framework_apart_and_checks_parity(tmp_path):
    """`--order processes`: one process per framework, then the merged table, parity checked
    on the losses both report (tiny final network)."""
    from prdarts_jax.runtime import host_memory

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = tmp_path / "merged.json"
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    for key in ("LD_PRELOAD", "MALLOC_CONF", "GLIBC_TUNABLES", host_memory._MARKER):
        env.pop(key, None)
    done = subprocess.run(
        [sys.executable, "benchmarks/train_step.py", "--channels", "4", "--layers", "3",
         "--image", "8", "--batch", "4", "--reps", "1", "--warmup", "2", "--order", "processes",
         "--json", str(out)], cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("a process of its own") == 2
    result = json.loads(out.read_text())
    assert [r["framework"] for r in result["rows"]] == ["JAX shift_vjp+separable",
                                                       "PyTorch eager"]
    assert result["parity"]["DL2 C=4 L=3 b=4 JAX shift_vjp+separable"]["first"] < 1e-4
    jax_env, torch_env = result["environments"]
    assert "torch" not in jax_env and torch_env["torch_device"] == "cpu"
    expected = {"jemalloc": host_memory.find_jemalloc() is not None}
    assert (jax_env["host_memory"] == "jemalloc") is expected["jemalloc"]
    assert torch_env["host_memory"] in ("huge_pages", "glibc defaults")
    assert torch_env["host_memory"] != "jemalloc"
