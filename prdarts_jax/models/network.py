"""The final (evaluation) network built from a genotype (SPEC §6), as DARTS' NetworkCIFAR.

Stem (3×3 conv → 3C, affine BN), `layers` cells with reductions at L//3 and 2L//3 (they double
C), global average pool and a linear classifier; NHWC. Each cell preprocesses its two inputs
(FactorizedReduce after a reduction cell, else ReLU-1×1 conv-BN), sums two ops per node as the
genotype says and concatenates the genotype's concat states. Everything is affine.

Training mode adds drop path on every op output except stride-1 skips, and the auxiliary head on
the output of cell 2L//3. The drop probability is a call argument (a traced scalar), so raising
it every epoch does not recompile.

`python -m prdarts_jax.models.network` prints the parameter counts of the built-in genotypes.
"""

from __future__ import annotations

import math
from typing import Any

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp

from prdarts_jax.models.backbone import Stem, reduction_indices
from prdarts_jax.models.formulations import node_state
from prdarts_jax.models.ops import (
    BatchNorm,
    FactorizedReduce,
    ReLUConvBN,
    make_op,
    pointwise,
    uniform_fan_in,
)
from prdarts_jax.space.genotypes import PUBLISHED, Genotype, Pair

AUX_NAME = "aux_head"


def drop_path(key: jax.Array, x: jax.Array, drop_prob: jax.Array | float) -> jax.Array:
    """DARTS' drop path: zero whole samples with probability p, scale survivors by 1/(1-p)."""
    keep = 1.0 - drop_prob
    mask = jax.random.bernoulli(key, keep, (x.shape[0],) + (1,) * (x.ndim - 1))
    return x / keep * mask


def is_identity(op: Any, stride: int) -> bool:
    """Stride-1 skips are the only ops that drop path leaves alone."""
    return op.kind == "skip" and stride == 1


def check_genotype(genotype: Genotype) -> None:
    """Raises ValueError if the genotype cannot form a network (reduction concat of inputs)."""
    bad = [i for i in genotype.reduce_concat if i < 2]
    if bad:
        raise ValueError(f"genotype reduce_concat {list(genotype.reduce_concat)} names cell "
                         f"inputs {bad}, which are not downsampled in a reduction cell; "
                         "concatenate nodes (2..5) only")


class Cell(nn.Module):
    """One cell of the final network: node j = op_a(state_a) + op_b(state_b)."""

    pairs: tuple[Pair, ...]
    concat: tuple[int, ...]
    c: int
    reduction: bool
    reduction_prev: bool

    @nn.compact
    def __call__(self, s0: jax.Array, s1: jax.Array, drop_prob: jax.Array | float,
                 train: bool) -> jax.Array:
        s0 = (FactorizedReduce(self.c, True, name="pre0") if self.reduction_prev
              else ReLUConvBN(self.c, True, name="pre0"))(s0, train)
        s1 = ReLUConvBN(self.c, True, name="pre1")(s1, train)
        states = [node_state(s0), node_state(s1)]
        for j in range(len(self.pairs) // 2):
            node = 0.0
            for n in (2 * j, 2 * j + 1):
                op, i = self.pairs[n]
                stride = 2 if self.reduction and i < 2 else 1
                h = make_op(op, self.c, stride, True, name=f"op_{n}")(states[i], train)
                if train and not is_identity(op, stride):
                    h = drop_path(self.make_rng("drop_path"), h, drop_prob)
                node = node + h
            states.append(node_state(node))
        return jnp.concatenate([states[i] for i in self.concat], axis=-1)


def _conv(module: nn.Module, name: str, x: jax.Array, c_out: int, k: int) -> jax.Array:
    """k×k conv, no bias, no padding, PyTorch's default init."""
    c_in = x.shape[-1]
    w = module.param(name, uniform_fan_in(k * k * c_in), (k, k, c_in, c_out))
    if k == 1:
        return pointwise(x, w[0, 0])
    return jax.lax.conv_general_dilated(x, w, (1, 1), "VALID",
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))


class AuxiliaryHead(nn.Module):
    """DARTS' AuxiliaryHeadCIFAR: ReLU, 5×5 avg pool stride 3, 1×1 conv → 128, BN, ReLU,
    2×2 conv → 768, BN, ReLU, linear.

    On CIFAR the input map is 8×8, the pool gives 2×2 and the 2×2 conv 1×1, as in DARTS. Smaller
    maps (2×2 on 8×8 digits) shrink the pool window and then the conv kernel to at most the map
    size, so the head works on any input of at least 1×1.
    """

    num_classes: int

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        chex.assert_rank(x, 4)
        k = min(5, x.shape[1], x.shape[2])
        x = nn.avg_pool(nn.relu(x), (k, k), strides=(3, 3), padding="VALID")
        x = nn.relu(BatchNorm(True, name="bn_1")(_conv(self, "conv_1", x, 128, 1), train))
        k = min(2, x.shape[1], x.shape[2])
        x = nn.relu(BatchNorm(True, name="bn_2")(_conv(self, "conv_2", x, 768, k), train))
        x = x.reshape(x.shape[0], -1)
        return nn.Dense(self.num_classes, name="classifier",
                        kernel_init=uniform_fan_in(x.shape[-1]),
                        bias_init=uniform_fan_in(x.shape[-1]))(x)


class Network(nn.Module):
    """The evaluation network. Returns (logits, aux_logits); aux_logits is None unless
    training with `auxiliary`. Training needs an rng stream named `drop_path`."""

    genotype: Genotype
    num_classes: int
    c: int = 36
    layers: int = 20
    auxiliary: bool = True
    stem_multiplier: int = 3

    @nn.compact
    def __call__(self, x: jax.Array, train: bool, drop_prob: jax.Array | float = 0.0
                 ) -> tuple[jax.Array, jax.Array | None]:
        chex.assert_rank(x, 4)
        g = self.genotype
        s0 = s1 = Stem(self.stem_multiplier * self.c, name="stem")(x, train)
        c_cur = self.c
        reductions = reduction_indices(self.layers)
        aux_logits = None
        reduction_prev = False
        for i in range(self.layers):
            reduction = i in reductions
            if reduction:
                c_cur *= 2
            pairs, concat = (g.reduce, g.reduce_concat) if reduction else (g.normal,
                                                                             g.normal_concat)
            cell = Cell(pairs, concat, c_cur, reduction, reduction_prev, name=f"cell_{i}")
            s0, s1 = s1, cell(s0, s1, drop_prob, train)
            reduction_prev = reduction
            if i == reductions[1] and self.auxiliary and train:
                aux_logits = AuxiliaryHead(self.num_classes, name=AUX_NAME)(s1, train)
        pooled = jnp.mean(s1, axis=(1, 2))
        logits = nn.Dense(self.num_classes, name="classifier",
                          kernel_init=uniform_fan_in(pooled.shape[-1]),
                          bias_init=uniform_fan_in(pooled.shape[-1]))(pooled)
        chex.assert_shape(logits, (x.shape[0], self.num_classes))
        return logits, aux_logits


def init_variables_shape(net: Network, image_shape: tuple[int, ...], train: bool = True
                         ) -> dict:
    """The variables' shapes and dtypes (no compile): `jax.eval_shape` of `net.init`."""
    x = jax.ShapeDtypeStruct((2, *image_shape), jnp.float32)
    key = jax.random.PRNGKey(0)
    rngs = {"params": key, "drop_path": key}
    return jax.eval_shape(lambda x: net.init(rngs, x, train), x)


def count_params(params: Any) -> int:
    """Parameters without the auxiliary head (DARTS' convention; BN scale/bias included)."""
    params = {k: v for k, v in params.items() if k != AUX_NAME}
    return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(params))


def param_count(genotype: Genotype, num_classes: int, c: int = 36, layers: int = 20,
                image_shape: tuple[int, ...] = (32, 32, 3)) -> int:
    """Parameter count of the final network without the auxiliary head, via eval_shape."""
    net = Network(genotype, num_classes, c, layers, auxiliary=False)
    return count_params(init_variables_shape(net, image_shape, train=False)["params"])


def param_counts(c: int = 36, layers: int = 20) -> dict[tuple[str, int], int]:
    """{(genotype name, classes): parameters} for the built-ins on CIFAR-10 and CIFAR-100."""
    return {(name, classes): param_count(g, classes, c, layers)
            for name, g in PUBLISHED.items() for classes in (10, 100)}


def param_table(counts: dict[tuple[str, int], int]) -> str:
    """The Markdown table of `param_counts`."""
    rows = ["| genotype | CIFAR-10 params | CIFAR-10 (M) | CIFAR-100 params | CIFAR-100 (M) |",
            "|---|---:|---:|---:|---:|"]
    for name in PUBLISHED:
        n10, n100 = counts[name, 10], counts[name, 100]
        rows.append(f"| {name} | {n10:,} | {n10 / 1e6:.1f} | {n100:,} | {n100 / 1e6:.1f} |")
    return "\n".join(rows)

