"""Genotypes: discrete cells as (op, input) pairs, JSON in and out, and the published cells.

A cell has 4 nodes; node j sums two ops whose inputs are states 0..j+1 (0 and 1 are the cell
inputs, 2+ earlier nodes). The search writes `genotype.json` in this format, and the final
network reads it (`load_genotype` takes a built-in name or a path).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re

from prdarts_jax.space.opspec import OpSpec
from prdarts_jax.space.spaces import NODES, OPS_PER_CELL

Pair = tuple[OpSpec, int]
CONCAT = (2, 3, 4, 5)


@dataclasses.dataclass(frozen=True)
class Genotype:
    normal: tuple[Pair, ...]
    reduce: tuple[Pair, ...]
    normal_concat: tuple[int, ...] = CONCAT
    reduce_concat: tuple[int, ...] = CONCAT

    def __post_init__(self) -> None:
        for name in ("normal", "reduce"):
            _validate_cell(name, getattr(self, name), getattr(self, f"{name}_concat"))

    def to_json(self) -> dict:
        out = {}
        for name in ("normal", "reduce"):
            out[name] = [[str(op), i] for op, i in getattr(self, name)]
            out[f"{name}_concat"] = list(getattr(self, f"{name}_concat"))
        return out

    @staticmethod
    def from_json(d: dict) -> "Genotype":
        try:
            cells = {name: tuple((OpSpec.parse(op), int(i)) for op, i in d[name])
                     for name in ("normal", "reduce")}
            concat = {f"{n}_concat": tuple(int(i) for i in d.get(f"{n}_concat", CONCAT))
                      for n in ("normal", "reduce")}
        except (KeyError, TypeError) as err:
            raise ValueError(f"malformed genotype JSON ({err!r}); expected keys normal, reduce "
                             "with [op, input] pairs") from None
        return Genotype(**cells, **concat)

    def describe(self) -> str:
        """The spec's display form (`op.notation`@input, nodes split by `|`), one line per
        cell type; `parse_cell` reads a line back."""
        def cell(pairs: tuple[Pair, ...]) -> str:
            nodes = [pairs[2 * j:2 * j + 2] for j in range(NODES)]
            return " | ".join(" ".join(f"{op.notation}@{i}" for op, i in node) for node in nodes)
        return f"normal: {cell(self.normal)}\nreduce: {cell(self.reduce)}"


def _validate_cell(name: str, pairs: tuple[Pair, ...], concat: tuple[int, ...]) -> None:
    if len(pairs) != OPS_PER_CELL:
        raise ValueError(f"genotype {name} cell needs {OPS_PER_CELL} (op, input) pairs, "
                         f"got {len(pairs)}")
    for n, (op, i) in enumerate(pairs):
        if not isinstance(op, OpSpec):
            raise ValueError(f"genotype {name} pair {n}: {op!r} is not an op")
        if not 0 <= i < 2 + n // 2:
            raise ValueError(f"genotype {name} pair {n} ({op}): input {i} out of range "
                             f"0..{1 + n // 2} for node {n // 2}")
    if not concat or any(not 0 <= c < 2 + NODES for c in concat):
        raise ValueError(f"genotype {name}_concat {list(concat)} must name states 0..{1 + NODES}")


_TOKEN = re.compile(r"(\S+)@(\d+)")


def parse_cell(text: str) -> tuple[Pair, ...]:
    """Reads the spec's notation: `conv(k5,[1])@0 conv(k3,[1])@1 | …`."""
    return tuple((OpSpec.parse(op), int(i)) for op, i in _TOKEN.findall(text))


def _published(normal: str, reduce: str) -> Genotype:
    return Genotype(parse_cell(normal), parse_cell(reduce))


def _darts(normal: list, reduce: list) -> Genotype:
    return Genotype(tuple((OpSpec.parse(o), i) for o, i in normal),
                    tuple((OpSpec.parse(o), i) for o, i in reduce))


PUBLISHED: dict[str, Genotype] = {
    "DL1": _published(
        "conv(k5,[1])@0 conv(k3,[1])@1 | conv(k3,[1])@1 skip@2 | conv(k3,[1])@1 skip@2 | "
        "skip@0 skip@2",
        "conv(k3,[1])@0 skip@1 | maxpool3@0 conv(k5,[1])@2 | conv(k3,[1])@0 conv(k3,[1])@1 | "
        "maxpool3@1 conv(k3,[1])@4"),
    "DL2": _published(
        "conv(k3,[1])@0 conv(k3,[])@1 | conv(k3,[])@1 conv(k7,[1])@2 | skip@0 conv(k5,[1])@1 | "
        "conv(k3,[1])@1 conv(k7,[1])@4",
        "conv(k3,[])@0 conv(k3,[1])@1 | conv(k3,[1])@1 skip@2 | maxpool3@0 conv(k3,[])@3 | "
        "conv(k3,[])@0 skip@3"),
    "DR": _published(
        "conv(k3,[])@0 conv(k3,[3])@1 | conv(k7,[1])@1 conv(k5,[2])@2 | skip@1 skip@3 | "
        "skip@0 skip@2",
        "conv(k5,[2])@0 maxpool3@1 | maxpool3@1 conv(k3,[1])@2 | maxpool3@0 conv(k3,[3])@2 | "
        "maxpool3@0 conv(k1,[1])@3"),
    "UR": _published(
        "conv(k3,[2])@0 conv(k1,[])@1 | conv(k3,[1,1,1])@1 conv(k5,[])@2 | "
        "conv(k1,[1])@1 conv(k3,[1,1])@2 | conv(k1,[1])@3 conv(k5,[1,1])@4",
        "conv(k7,[1])@0 conv(k3,[])@1 | conv(k3,[1,1])@0 conv(k3,[1])@2 | skip@0 skip@2 | "
        "conv(k7,[1,1])@1 skip@2"),
    "DARTS_V1": _darts(
        [("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 0), ("sep_conv_3x3", 1),
         ("skip_connect", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 2)],
        [("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 0),
         ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("avg_pool_3x3", 0)]),
    "DARTS_V2": _darts(
        [("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
         ("sep_conv_3x3", 1), ("skip_connect", 0), ("skip_connect", 0), ("dil_conv_3x3", 2)],
        [("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 1),
         ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("max_pool_3x3", 1)]),
    "PDARTS": _darts(
        [("skip_connect", 0), ("dil_conv_3x3", 1), ("skip_connect", 0), ("sep_conv_3x3", 1),
         ("sep_conv_3x3", 1), ("sep_conv_3x3", 3), ("sep_conv_3x3", 0), ("dil_conv_5x5", 4)],
        [("avg_pool_3x3", 0), ("sep_conv_5x5", 1), ("sep_conv_3x3", 0), ("dil_conv_5x5", 2),
         ("max_pool_3x3", 0), ("dil_conv_3x3", 1), ("dil_conv_3x3", 1), ("dil_conv_5x5", 3)]),
}


def save_genotype(genotype: Genotype, path: str) -> None:
    with open(path, "w") as f:
        json.dump(genotype.to_json(), f, indent=1)


def load_genotype(name_or_path: str) -> Genotype:
    """A built-in genotype by name (DL1, DL2, DR, UR, DARTS_V1, DARTS_V2, PDARTS) or a JSON path."""
    if name_or_path.upper() in PUBLISHED:
        return PUBLISHED[name_or_path.upper()]
    if not os.path.exists(name_or_path):
        raise ValueError(f"unknown genotype {name_or_path!r}: neither a built-in name "
                         f"({', '.join(PUBLISHED)}) nor an existing genotype.json path")
    try:
        with open(name_or_path) as f:
            data = json.load(f)
    except json.JSONDecodeError as err:
        raise ValueError(f"genotype file {name_or_path} is not valid JSON: {err}") from None
    return Genotype.from_json(data)


EDGE_SCORES = ("max_weight", "group_mass")
"""How the genotype ranks an edge. `max_weight` (SPEC §4, the default): softmax(α) of its
strongest op. `group_mass`: the softmax mass of that op's similarity group (all convs, which
descend from one another by morphisms; each pool; skip), so that two similar survivors sharing
the weight — the paper's group similarity problem (§3.2.1) — do not make an edge look weak."""


def _similarity_group(op: OpSpec) -> str:
    return "conv" if op.is_conv else str(op)


def edge_score(ops: tuple[OpSpec, ...], alpha, rule: str = "max_weight") -> tuple[float, int]:
    """(score, index of the strongest op) of one edge under `rule` (see EDGE_SCORES)."""
    return _scored(ops, alpha, rule, without_skip=False)


def _scored(ops: tuple[OpSpec, ...], alpha, rule: str, *,
            without_skip: bool) -> tuple[float, int]:
    """`edge_score`, optionally with the strongest op sought among the non-skip ops only (the
    weights stay softmax(α) over the whole edge); the edge must then hold a non-skip op."""
    import numpy as np

    if rule not in EDGE_SCORES:
        raise ValueError(f"unknown edge score {rule!r}; use one of {list(EDGE_SCORES)}")
    a = np.asarray(alpha, np.float64)
    w = np.exp(a - a.max())
    w /= w.sum()
    allowed = [not (without_skip and op.kind == "skip") for op in ops]
    best = int(np.argmax(np.where(allowed, a, -np.inf)))
    if rule == "max_weight":
        return float(w[best]), best
    group = _similarity_group(ops[best])
    return float(sum(wi for wi, op in zip(w, ops) if _similarity_group(op) == group)), best


def derive_genotype(edges: dict, alphas: dict, *, rule: str = "max_weight",
                    max_skips: int | None = None) -> Genotype:
    """The discrete cells after a search (SPEC §4): per edge its highest-α op, scored by `rule`
    (default: softmax(α) of that op); per node the two strongest incoming edges, listed by input.

    `edges[t]` holds the 14 op tuples of cell type t and `alphas[t]` their α vectors, both in
    the supernet's edge order (node by node, inputs ascending). `max_skips` (P-DARTS; None: no
    limit) caps the skips of the normal cell: see `_limit_skips`.
    """
    cells = {}
    for t in ("normal", "reduce"):
        if t == "normal" and max_skips is not None:
            chosen = _limit_skips(edges[t], alphas[t], rule, max_skips)
        else:
            chosen = _choose(edges[t], alphas[t], rule, frozenset())
        cells[t] = tuple((op, i) for _, i, _, op in chosen)
    return Genotype(cells["normal"], cells["reduce"])


def _node_edges(j: int) -> range:
    """The edge indices of node j's inputs (states 0..j+1)."""
    start = sum(range(2, j + 2))
    return range(start, start + j + 2)


def _choose(ops: list, alphas: list, rule: str, no_skip: frozenset) -> list[tuple]:
    """Per node its two strongest edges as (score, input, edge, op), listed by input; edges in
    `no_skip` are scored by their best non-skip op, and drop out if they hold only skip."""
    chosen = []
    for j in range(NODES):
        cands = []
        for i, e in enumerate(_node_edges(j)):
            if e in no_skip and all(op.kind == "skip" for op in ops[e]):
                continue
            score, best = _scored(ops[e], alphas[e], rule, without_skip=e in no_skip)
            cands.append((-score, i, e, ops[e][best]))
        top = sorted(sorted(cands)[:2], key=lambda c: c[1])
        chosen += [(-s, i, e, op) for s, i, e, op in top]
    return chosen


def _limit_skips(ops: list, alphas: list, rule: str, max_skips: int) -> list[tuple]:
    """`_choose` under a cap on skips (P-DARTS): while more than `max_skips` chosen edges carry
    skip, the one of lowest score (ties: the lower edge index) loses its skip option, and every
    node chooses its two edges again. An edge holding only skip is spared when its node would
    keep fewer than two edges; if only such edges are left, the limit cannot hold and the cell
    keeps those skips."""
    no_skip: frozenset = frozenset()
    while True:
        chosen = _choose(ops, alphas, rule, no_skip)
        skips = [c for c in chosen if c[3].kind == "skip"]
        if len(skips) <= max_skips:
            return chosen
        spare = [c for c in skips if _keeps_two(ops, c[2], no_skip | {c[2]})]
        if not spare:
            return chosen
        no_skip |= {min(spare, key=lambda c: (c[0], c[2]))[2]}


def _keeps_two(ops: list, edge: int, no_skip: frozenset) -> bool:
    """Whether the node of `edge` still has two edges to choose from under `no_skip`."""
    node = next(j for j in range(NODES) if edge in _node_edges(j))
    return sum(1 for e in _node_edges(node)
               if not (e in no_skip and all(op.kind == "skip" for op in ops[e]))) >= 2
