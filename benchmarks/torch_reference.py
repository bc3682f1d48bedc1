"""A PyTorch reference of the work that prdarts_jax does, for side-by-side benchmarks.

Written from SPEC §1, §3, §4 and §6 (not taken from the authors' release), with the semantics of
`prdarts_jax.models.ops` / `supernet` / `network`, in PyTorch's usual layout (NCHW, OIHW kernels):

- ops: SepConv layers (ReLU → depthwise k×k, dilation, groups = C → pointwise 1×1 → BN), conv ops
  as stacks of them (one per `c_mul` entry, then one to C; stride in the first layer), 3×3 pools
  (average excluding the padding) followed by a non-affine BN in the search, skip (identity, or
  FactorizedReduce at stride 2). BN: momentum 0.1, eps 1e-5, non-affine in the search;
- `SearchNetwork`: stem, cells with reductions at L//3 and 2L//3, 14 mixed edges per cell over
  each edge's own pool (Σ softmax(α)·op(x)), the 4 nodes concatenated, GAP, linear; α is an
  argument of `forward`, shared by all cells of one type;
- `FinalNetwork`: DARTS' evaluation network for a genotype (affine, drop path on every op but
  stride-1 skips, auxiliary head after cell 2L//3);
- `SearchStep` / `TrainStep`: the first-order search step (an α step, Adam on α, then a weight
  step, SGD with momentum, coupled weight decay, global-norm clipping) and the retraining step,
  with `bilevel.Hyper`'s / `training.StepSettings`' hyperparameters.

The steps ask autograd only for the gradients they use (`torch.autograd.grad`), which skips the
weight gradients in the α step; the original DARTS code computes all gradients in both steps, so
this reference is at least as fast as that formulation.

Module and parameter names follow the Flax modules (`cell_3.edge_5.conv_k3_d1_m1.layer_0.
depthwise.weight` ↔ `params/cell_3/edge_5/conv_k3_d1_m1/layer_0/depthwise`), so that
`load_jax_variables` can port a JAX variable tree into a model and the two frameworks can be
checked against each other on the same weights.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from prdarts_jax.space.genotypes import Genotype
from prdarts_jax.space.opspec import OpSpec

CELL_TYPES = ("normal", "reduce")
NODES = 4
BN_MOMENTUM = 0.1
BN_EPS = 1e-5


def batch_norm(c: int, affine: bool) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=BN_EPS, momentum=BN_MOMENTUM, affine=affine)


def reduction_indices(layers: int) -> tuple[int, int]:
    return (layers // 3, 2 * layers // 3)


class SepConv(nn.Module):
    """ReLU → depthwise k×k (dilation, stride) → pointwise 1×1 → BN."""

    def __init__(self, c_in: int, c_out: int, k: int, dil: int, stride: int, affine: bool):
        super().__init__()
        self.depthwise = nn.Conv2d(c_in, c_in, k, stride, ((k - 1) * dil) // 2, dilation=dil,
                                   groups=c_in, bias=False)
        self.pointwise = nn.Conv2d(c_in, c_out, 1, bias=False)
        self.bn = batch_norm(c_out, affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.pointwise(self.depthwise(F.relu(x))))


class ConvOp(nn.Module):
    """`conv(k, dil, c_mul)`: one SepConv per `c_mul` entry (to C·m channels), then one to C."""

    def __init__(self, c: int, op: OpSpec, stride: int, affine: bool):
        super().__init__()
        c_in = c
        for i, width in enumerate([c * m for m in op.c_mul] + [c]):
            self.add_module(f"layer_{i}", SepConv(c_in, width, op.k, op.dil,
                                                  stride if i == 0 else 1, affine))
            c_in = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.children():
            x = layer(x)
        return x


class PoolOp(nn.Module):
    """3×3 max or average pool (padding excluded from the average), BN-followed in the search."""

    def __init__(self, c: int, pool_type: str, stride: int, affine: bool):
        super().__init__()
        self.pool = (nn.MaxPool2d(3, stride, 1) if pool_type == "max"
                     else nn.AvgPool2d(3, stride, 1, count_include_pad=False))
        self.bn = None if affine else batch_norm(c, False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pool(x)
        return y if self.bn is None else self.bn(y)


class FactorizedReduce(nn.Module):
    """ReLU, two 1×1 stride-2 convs (the second on the input shifted by one pixel), concat, BN."""

    def __init__(self, c_in: int, c_out: int, affine: bool):
        super().__init__()
        half = c_out // 2
        self.conv_1 = nn.Conv2d(c_in, half, 1, 2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out - half, 1, 2, bias=False)
        self.bn = batch_norm(c_out, affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(x)
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(x[:, :, 1:, 1:])], dim=1))


class ReLUConvBN(nn.Module):
    """ReLU → 1×1 conv → BN: the cell input preprocessing."""

    def __init__(self, c_in: int, c_out: int, affine: bool):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 1, bias=False)
        self.bn = batch_norm(c_out, affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(F.relu(x)))


def make_op(op: OpSpec, c: int, stride: int, affine: bool) -> nn.Module:
    """The module realising `op` on C channels at `stride` (as `prdarts_jax.models.ops.make_op`)."""
    if op.kind == "pool":
        return PoolOp(c, op.pool_type, stride, affine)
    if op.kind == "skip":
        return nn.Identity() if stride == 1 else FactorizedReduce(c, c, affine)
    return ConvOp(c, op, stride, affine)


class Stem(nn.Module):
    """3×3 conv (no bias) + affine BN."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        self.bn = batch_norm(c_out, True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


def _preprocess(c_pp: int, c_p: int, c: int, reduction_prev: bool, affine: bool
                ) -> tuple[nn.Module, nn.Module]:
    pre0 = (FactorizedReduce(c_pp, c, affine) if reduction_prev
            else ReLUConvBN(c_pp, c, affine))
    return pre0, ReLUConvBN(c_p, c, affine)


class MixedEdge(nn.Module):
    """Σ_o w_o · o(x) over the edge's own pool; submodules keyed by the op's canonical string."""

    def __init__(self, ops: Sequence[OpSpec], c: int, stride: int):
        super().__init__()
        self.ops = list(ops)
        for op in self.ops:
            self.add_module(str(op), make_op(op, c, stride, False))

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        out = None
        for i, module in enumerate(self.children()):
            y = weights[i] * module(x)
            out = y if out is None else out + y
        return out


class SearchCell(nn.Module):
    def __init__(self, edges: Sequence[Sequence[OpSpec]], c_pp: int, c_p: int, c: int,
                 reduction: bool, reduction_prev: bool):
        super().__init__()
        self.pre0, self.pre1 = _preprocess(c_pp, c_p, c, reduction_prev, False)
        self.inputs = [i for j in range(NODES) for i in range(j + 2)]
        for e, ops in enumerate(edges):
            stride = 2 if reduction and self.inputs[e] < 2 else 1
            self.add_module(f"edge_{e}", MixedEdge(ops, c, stride))

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, weights: Sequence[torch.Tensor]
                ) -> torch.Tensor:
        states = [self.pre0(s0), self.pre1(s1)]
        e = 0
        for j in range(NODES):
            node = None
            for _ in range(j + 2):
                y = getattr(self, f"edge_{e}")(states[self.inputs[e]], weights[e])
                node = y if node is None else node + y
                e += 1
            states.append(node)
        return torch.cat(states[2:], dim=1)


class SearchNetwork(nn.Module):
    """The supernet (SPEC §3): stem, `layers` search cells, GAP, linear. NCHW."""

    def __init__(self, normal: Sequence[Sequence[OpSpec]], reduce: Sequence[Sequence[OpSpec]],
                 num_classes: int, c: int = 16, layers: int = 8, in_channels: int = 3,
                 stem_multiplier: int = 3):
        super().__init__()
        c_cur = stem_multiplier * c
        self.stem = Stem(in_channels, c_cur)
        c_pp, c_p, c_cur = c_cur, c_cur, c
        reduction_prev = False
        for i in range(layers):
            reduction = i in reduction_indices(layers)
            if reduction:
                c_cur *= 2
            edges = reduce if reduction else normal
            self.add_module(f"cell_{i}", SearchCell(edges, c_pp, c_p, c_cur, reduction,
                                                    reduction_prev))
            c_pp, c_p = c_p, NODES * c_cur
            reduction_prev = reduction
        self.layers = layers
        self.classifier = nn.Linear(c_p, num_classes)

    def forward(self, x: torch.Tensor, alphas: Mapping[str, Sequence[torch.Tensor]]
                ) -> torch.Tensor:
        weights = {t: [F.softmax(a, dim=-1) for a in alphas[t]] for t in CELL_TYPES}
        reductions = reduction_indices(self.layers)
        s0 = s1 = self.stem(x)
        for i in range(self.layers):
            kind = "reduce" if i in reductions else "normal"
            s0, s1 = s1, getattr(self, f"cell_{i}")(s0, s1, weights[kind])
        return self.classifier(s1.mean(dim=(2, 3)))


def drop_path(x: torch.Tensor, drop_prob: float) -> torch.Tensor:
    """Zeroes whole samples with probability p and scales the survivors by 1/(1-p)."""
    keep = 1.0 - drop_prob
    mask = torch.empty((x.shape[0], 1, 1, 1), device=x.device, dtype=x.dtype).bernoulli_(keep)
    return x / keep * mask


class Cell(nn.Module):
    """A cell of the final network: node j = op_a(state_a) + op_b(state_b), concat of `concat`."""

    def __init__(self, pairs: Sequence[tuple[OpSpec, int]], concat: Sequence[int], c_pp: int,
                 c_p: int, c: int, reduction: bool, reduction_prev: bool):
        super().__init__()
        self.pre0, self.pre1 = _preprocess(c_pp, c_p, c, reduction_prev, True)
        self.pairs = list(pairs)
        self.concat = list(concat)
        self.strides = [2 if reduction and i < 2 else 1 for _, i in pairs]
        for n, (op, _) in enumerate(pairs):
            self.add_module(f"op_{n}", make_op(op, c, self.strides[n], True))

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, drop_prob: float) -> torch.Tensor:
        states = [self.pre0(s0), self.pre1(s1)]
        for j in range(len(self.pairs) // 2):
            node = None
            for n in (2 * j, 2 * j + 1):
                op, i = self.pairs[n]
                h = getattr(self, f"op_{n}")(states[i])
                if self.training and not (op.kind == "skip" and self.strides[n] == 1):
                    h = drop_path(h, drop_prob)
                node = h if node is None else node + h
            states.append(node)
        return torch.cat([states[i] for i in self.concat], dim=1)


class AuxiliaryHead(nn.Module):
    """ReLU, 5×5 avg pool stride 3, 1×1 conv → 128, BN, ReLU, 2×2 conv → 768, BN, ReLU, linear.

    Kernels shrink to the map size on small inputs, as `prdarts_jax.models.network.AuxiliaryHead` does.
    """

    def __init__(self, c_in: int, num_classes: int, size: int):
        super().__init__()
        self.k_pool = min(5, size)
        pooled = (size - self.k_pool) // 3 + 1
        k2 = min(2, pooled)
        self.conv_1 = nn.Conv2d(c_in, 128, 1, bias=False)
        self.bn_1 = batch_norm(128, True)
        self.conv_2 = nn.Conv2d(128, 768, k2, bias=False)
        self.bn_2 = batch_norm(768, True)
        self.classifier = nn.Linear(768 * (pooled - k2 + 1) ** 2, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.avg_pool2d(F.relu(x), self.k_pool, 3, 0, count_include_pad=False)
        x = F.relu(self.bn_1(self.conv_1(x)))
        x = F.relu(self.bn_2(self.conv_2(x)))
        return self.classifier(x.flatten(1))


class FinalNetwork(nn.Module):
    """DARTS' NetworkCIFAR for a genotype (SPEC §6). `forward` returns (logits, aux_logits);
    aux_logits is None unless training with the auxiliary head."""

    def __init__(self, genotype: Genotype, num_classes: int, c: int = 36, layers: int = 20,
                 auxiliary: bool = True, in_channels: int = 3, image_size: int = 32,
                 stem_multiplier: int = 3):
        super().__init__()
        c_cur = stem_multiplier * c
        self.stem = Stem(in_channels, c_cur)
        c_pp, c_p, c_cur = c_cur, c_cur, c
        self.reductions = reduction_indices(layers)
        reduction_prev = False
        size = image_size
        self.aux_head = None
        for i in range(layers):
            reduction = i in self.reductions
            if reduction:
                c_cur *= 2
                size = (size + 1) // 2
            pairs, concat = ((genotype.reduce, genotype.reduce_concat) if reduction
                             else (genotype.normal, genotype.normal_concat))
            self.add_module(f"cell_{i}", Cell(pairs, concat, c_pp, c_p, c_cur, reduction,
                                              reduction_prev))
            c_pp, c_p = c_p, len(concat) * c_cur
            reduction_prev = reduction
            if i == self.reductions[1] and auxiliary:
                self.aux_head = AuxiliaryHead(c_p, num_classes, size)
        self.layers = layers
        self.classifier = nn.Linear(c_p, num_classes)

    def forward(self, x: torch.Tensor, drop_prob: float = 0.0
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        s0 = s1 = self.stem(x)
        aux = None
        for i in range(self.layers):
            s0, s1 = s1, getattr(self, f"cell_{i}")(s0, s1, drop_prob)
            if i == self.reductions[1] and self.aux_head is not None and self.training:
                aux = self.aux_head(s1)
        return self.classifier(s1.mean(dim=(2, 3))), aux


# ----------------------------------------------------------------------------- steps


def _update(loss: torch.Tensor, tensors: Sequence[torch.Tensor], opt: torch.optim.Optimizer,
            grad_clip: float, lr: float | None = None) -> torch.Tensor:
    """One optimizer step on `tensors` only: their gradients of `loss` (autograd computes no
    others), global-norm clip, then `opt` at learning rate `lr` (None: the optimizer's own)."""
    for t, g in zip(tensors, torch.autograd.grad(loss, tensors)):
        t.grad = g
    nn.utils.clip_grad_norm_(tensors, grad_clip)
    if lr is not None:
        for group in opt.param_groups:
            group["lr"] = lr
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss.detach()


class SearchStep:
    """The first-order search step (SPEC §4) on a `SearchNetwork`: an α step on an α-half batch
    (Adam 6e-4, betas 0.5/0.999, coupled weight decay 1e-3, clip 5), then a weight step on a
    weight-half batch (SGD momentum 0.9, coupled weight decay 3e-4, clip 5, learning rate per
    call). Both forwards run in training mode, so both update the BN statistics.

    `forward` may be replaced by a `torch.compile`d version of `model` (same parameters).
    """

    def __init__(self, model: SearchNetwork, alphas: Mapping[str, Sequence[torch.Tensor]], *,
                 momentum: float = 0.9, weight_decay: float = 3e-4, grad_clip: float = 5.0,
                 alpha_lr: float = 6e-4, alpha_betas: tuple[float, float] = (0.5, 0.999),
                 alpha_weight_decay: float = 1e-3, alpha_grad_clip: float = 5.0,
                 forward: Any = None):
        self.model = model
        self.forward = model if forward is None else forward
        self.alphas = alphas
        self.alpha_list = [a for t in CELL_TYPES for a in alphas[t]]
        self.params = [p for p in model.parameters()]
        self.grad_clip, self.alpha_grad_clip = grad_clip, alpha_grad_clip
        self.w_opt = torch.optim.SGD(self.params, lr=0.0, momentum=momentum,
                                     weight_decay=weight_decay)
        self.a_opt = torch.optim.Adam(self.alpha_list, lr=alpha_lr, betas=alpha_betas,
                                      eps=1e-8, weight_decay=alpha_weight_decay)

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self.forward(x, self.alphas), y)

    def alpha_step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return _update(self.loss(x, y), self.alpha_list, self.a_opt, self.alpha_grad_clip)

    def weight_step(self, x: torch.Tensor, y: torch.Tensor, lr: float) -> torch.Tensor:
        return _update(self.loss(x, y), self.params, self.w_opt, self.grad_clip, lr)

    def __call__(self, xa: torch.Tensor, ya: torch.Tensor, xw: torch.Tensor, yw: torch.Tensor,
                 lr: float) -> tuple[torch.Tensor, torch.Tensor]:
        """One α step then one weight step; returns both losses."""
        return self.alpha_step(xa, ya), self.weight_step(xw, yw, lr)


class TrainStep:
    """The retraining step (SPEC §6) on a `FinalNetwork`: loss CE + aux_weight·CE_aux, SGD with
    momentum 0.9, coupled weight decay 3e-4, global-norm clip 5; lr and drop path per call."""

    def __init__(self, model: FinalNetwork, *, momentum: float = 0.9,
                 weight_decay: float = 3e-4, grad_clip: float = 5.0, aux_weight: float = 0.4,
                 forward: Any = None):
        self.model = model
        self.forward = model if forward is None else forward
        self.params = [p for p in model.parameters()]
        self.grad_clip, self.aux_weight = grad_clip, aux_weight
        self.opt = torch.optim.SGD(self.params, lr=0.0, momentum=momentum,
                                   weight_decay=weight_decay)

    def loss(self, x: torch.Tensor, y: torch.Tensor, drop_prob: float) -> torch.Tensor:
        logits, aux = self.forward(x, drop_prob)
        loss = F.cross_entropy(logits, y)
        if aux is not None:
            loss = loss + self.aux_weight * F.cross_entropy(aux, y)
        return loss

    def __call__(self, x: torch.Tensor, y: torch.Tensor, lr: float, drop_prob: float
                 ) -> torch.Tensor:
        return _update(self.loss(x, y, drop_prob), self.params, self.opt, self.grad_clip, lr)


def make_alphas(jax_alphas: Mapping[str, Sequence[Any]], device: Any = None
                ) -> dict[str, list[torch.Tensor]]:
    """Leaf tensors (requiring grad) holding the values of a JAX α pytree."""
    return {t: [torch.tensor(np.asarray(a), dtype=torch.float32, device=device,
                             requires_grad=True) for a in jax_alphas[t]] for t in CELL_TYPES}


# ----------------------------------------------------------------------------- weight porter

_CONV_LEAVES = ("depthwise", "pointwise", "conv", "conv_1", "conv_2")


def _to_torch_layout(name: str, value: np.ndarray) -> tuple[str, np.ndarray]:
    """(suffix of the torch name, value in torch's layout) of one Flax parameter leaf."""
    if name in _CONV_LEAVES:
        if value.ndim == 3:              # depthwise (k, k, C) -> (C, 1, k, k)
            return f"{name}.weight", value.transpose(2, 0, 1)[:, None]
        if value.ndim == 2:              # 1×1 (C_in, C_out) -> (C_out, C_in, 1, 1)
            return f"{name}.weight", value.T[:, :, None, None]
        return f"{name}.weight", value.transpose(3, 2, 0, 1)   # HWIO -> OIHW
    if name == "kernel":                 # Dense (in, out) -> Linear (out, in)
        return "weight", value.T
    if name == "scale":
        return "weight", value
    if name == "bias":
        return "bias", value
    raise ValueError(f"no torch counterpart for the parameter leaf {name!r}")


def _flatten(tree: Mapping[str, Any], prefix: tuple[str, ...] = ()
             ) -> Iterable[tuple[tuple[str, ...], Any]]:
    for key, value in tree.items():
        if isinstance(value, Mapping):
            yield from _flatten(value, prefix + (str(key),))
        else:
            yield prefix + (str(key),), value


def torch_state_dict(variables: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """A torch state dict holding a Flax variable tree (`params`, `batch_stats`)."""
    out = {}
    for path, value in _flatten(variables.get("params", {})):
        suffix, array = _to_torch_layout(path[-1], np.asarray(value, np.float32))
        out[".".join(path[:-1] + (suffix,))] = torch.from_numpy(np.array(array, np.float32, order="C"))
    stats = {"mean": "running_mean", "var": "running_var"}
    for path, value in _flatten(variables.get("batch_stats", {})):
        name = ".".join(path[:-1] + (stats[path[-1]],))
        out[name] = torch.from_numpy(np.array(value, np.float32))
    return out


def load_jax_variables(model: nn.Module, variables: Mapping[str, Any]) -> None:
    """Copies a Flax variable tree into `model`. Every parameter and BN statistic of the model
    must be covered, and nothing else given (only BN's step counters stay as they are)."""
    state = torch_state_dict(variables)
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise ValueError(f"JAX and torch variables differ: missing in JAX {missing[:5]}, "
                         f"unknown to torch {unexpected[:5]}")
