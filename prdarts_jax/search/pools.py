"""Per-edge candidate pools and the end-of-cycle prune-and-replace step (SPEC §4).

Every edge of a cell type holds its own ordered pool of ops and its own history (every op it ever
held). At the end of a cycle each edge is pruned by its architecture weights α and refilled with
children morphed from the survivors. This is host-side bookkeeping on small immutable values; the
network weights of new ops are the caller's concern (`morphisms.morph` of the recorded parent).

Semantics chosen here:
- A pool's order is the order of its α entries and of its ops in the network. Survivors keep
  their relative order from the old pool and children are appended in order of birth, so an op's
  position only moves when ops before it are dropped.
- The transition at the end of a cycle is (keep, morphs, final): keep ops after the step,
  `morphs` of them new. The survivor count is `min(current, keep - morphs)` and exactly `morphs`
  children are sought. An edge that came up short earlier (failed replacement) therefore regains
  the full count as soon as it has `keep - morphs` ops; with fewer it keeps them all and adds
  `morphs`. `0 <= morphs < keep` is required, so at least one op survives as a parent.
- Replacement counts tries (one parent draw each). A try fails when the parent has no legal
  morph (pools, skip, a cornered conv) or the child is refused. After `revisit_after` failed tries
  a previously dropped op may return; an op in the current pool never may.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np

from prdarts_jax.space.opspec import INITIAL_POOL, OpSpec
from prdarts_jax.space.spaces import (
    CELL_TYPES,
    EDGES_PER_CELL,
    SearchSpace,
    apply_change,
    legal_morphisms,
)

MAX_TRIES = 250
REVISIT_AFTER = 200


@dataclasses.dataclass(frozen=True)
class EdgePool:
    """One edge's ordered candidate ops and every op it ever held (the current ones included)."""

    ops: tuple[OpSpec, ...]
    history: frozenset[OpSpec] = frozenset()

    def __post_init__(self) -> None:
        ops = tuple(self.ops)
        if not ops:
            raise ValueError("an edge pool needs at least one op")
        if len(set(ops)) != len(ops):
            raise ValueError(f"duplicate ops in edge pool: {[str(o) for o in ops]}")
        object.__setattr__(self, "ops", ops)
        object.__setattr__(self, "history", frozenset(self.history) | frozenset(ops))

    def __len__(self) -> int:
        return len(self.ops)

    def to_json(self) -> dict:
        return {"ops": [str(o) for o in self.ops], "history": sorted(map(str, self.history))}

    @staticmethod
    def from_json(d: Mapping) -> "EdgePool":
        return EdgePool(tuple(map(OpSpec.parse, d["ops"])),
                        frozenset(map(OpSpec.parse, d["history"])))


@dataclasses.dataclass(frozen=True)
class CellPools:
    """The edge pools of both cell types; `pools["normal"]` is a tuple of `EdgePool`."""

    normal: tuple[EdgePool, ...]
    reduce: tuple[EdgePool, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "normal", tuple(self.normal))
        object.__setattr__(self, "reduce", tuple(self.reduce))

    def __getitem__(self, cell_type: str) -> tuple[EdgePool, ...]:
        if cell_type not in CELL_TYPES:
            raise KeyError(f"unknown cell type {cell_type!r}; expected one of {CELL_TYPES}")
        return getattr(self, cell_type)

    def op_counts(self) -> dict[str, tuple[int, ...]]:
        """Ops per edge for each cell type."""
        return {c: tuple(len(e) for e in self[c]) for c in CELL_TYPES}

    def to_json(self) -> dict:
        return {c: [e.to_json() for e in self[c]] for c in CELL_TYPES}

    @staticmethod
    def from_json(d: Mapping) -> "CellPools":
        return CellPools(**{c: tuple(EdgePool.from_json(e) for e in d[c]) for c in CELL_TYPES})


def initial_pools(ops: Sequence[OpSpec] = INITIAL_POOL,
                  edges: int = EDGES_PER_CELL) -> CellPools:
    """Every edge of both cell types starts with the same pool (SPEC §1: "prdarts4")."""
    edge = EdgePool(tuple(ops))
    return CellPools(normal=(edge,) * edges, reduce=(edge,) * edges)


@dataclasses.dataclass(frozen=True)
class Birth:
    """A new op: `child` is `apply_change(kind, parent)` for a surviving `parent`.

    `returned` marks a child that the edge held before (accepted by the revisit fallback).
    `probability`: the chance its kind had of being drawn for this parent, kept (and written)
    only with the weighted morphism selection (`search.morph_scores`).
    """

    child: OpSpec
    parent: OpSpec
    kind: int
    returned: bool = False
    probability: float | None = None

    def to_json(self) -> dict:
        out = {"child": str(self.child), "parent": str(self.parent), "kind": self.kind,
               "returned": self.returned}
        if self.probability is not None:
            out["kind_probability"] = self.probability
        return out


@dataclasses.dataclass(frozen=True)
class EdgeReport:
    """What happened to one edge: the old pool with its α, and what was dropped and added."""

    ops: tuple[OpSpec, ...]
    alpha: tuple[float, ...]
    dropped: tuple[OpSpec, ...]
    survivors: tuple[OpSpec, ...]
    added: tuple[Birth, ...]
    failed_tries: int

    def to_json(self) -> dict:
        return {"ops": [str(o) for o in self.ops], "alpha": list(self.alpha),
                "dropped": [str(o) for o in self.dropped],
                "survivors": [str(o) for o in self.survivors],
                "added": [b.to_json() for b in self.added], "failed_tries": self.failed_tries}


@dataclasses.dataclass(frozen=True)
class PoolReport:
    """The reports of every edge of both cell types for one end-of-cycle step."""

    keep: int
    morphs: int
    final: bool
    normal: tuple[EdgeReport, ...]
    reduce: tuple[EdgeReport, ...]

    def __getitem__(self, cell_type: str) -> tuple[EdgeReport, ...]:
        if cell_type not in CELL_TYPES:
            raise KeyError(f"unknown cell type {cell_type!r}; expected one of {CELL_TYPES}")
        return getattr(self, cell_type)

    def to_json(self) -> dict:
        return {"keep": self.keep, "morphs": self.morphs, "final": self.final,
                **{c: [r.to_json() for r in self[c]] for c in CELL_TYPES}}


def _check_alpha(edge: EdgePool, alpha: np.ndarray) -> np.ndarray:
    a = np.asarray(alpha, dtype=np.float64).reshape(-1)
    if a.shape[0] != len(edge.ops):
        raise ValueError(f"alpha has {a.shape[0]} entries for an edge of {len(edge.ops)} ops")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"alpha is not finite: {a.tolist()}")
    return a


def prune_edge(edge: EdgePool, alpha: np.ndarray, n_keep: int,
               keep_best_conv: bool) -> tuple[EdgePool, np.ndarray, tuple[OpSpec, ...]]:
    """Keeps the `n_keep` ops of highest α (ties: earlier position first).

    With `keep_best_conv`, if no conv would survive but the edge has one, the highest-α conv
    takes the place of the lowest kept op, so that a morphable parent remains. Returns the pruned
    edge (survivors in their original order; history unchanged), their α in that order and the
    dropped ops in original order.
    """
    a = _check_alpha(edge, alpha)
    if n_keep < 1:
        raise ValueError(f"n_keep must be >= 1, got {n_keep}")
    ranked = sorted(range(len(a)), key=lambda i: (-a[i], i))
    kept = ranked[:n_keep]
    if keep_best_conv and not any(edge.ops[i].is_conv for i in kept):
        best_conv = next((i for i in ranked if edge.ops[i].is_conv), None)
        if best_conv is not None:
            kept = kept[:-1] + [best_conv]
    kept_set = set(kept)
    order = sorted(kept_set)
    dropped = tuple(op for i, op in enumerate(edge.ops) if i not in kept_set)
    return (EdgePool(tuple(edge.ops[i] for i in order), edge.history), a[order], dropped)


def softmax(alpha: np.ndarray) -> np.ndarray:
    a = np.asarray(alpha, dtype=np.float64)
    e = np.exp(a - a.max())
    return e / e.sum()


def sample_parent(survivors: Sequence[OpSpec], alpha: np.ndarray,
                  rng: np.random.Generator) -> OpSpec:
    """A survivor drawn with probability softmax(α) over the survivors (one generator draw)."""
    if len(survivors) != len(alpha) or not survivors:
        raise ValueError(f"need one alpha per survivor, got {len(alpha)} for {len(survivors)}")
    cdf = np.cumsum(softmax(alpha))
    i = int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"))
    return survivors[min(i, len(survivors) - 1)]


def _sample_kind(op: OpSpec, space: SearchSpace, rng: np.random.Generator) -> int | None:
    """As `morphisms.sample_morph` (same draw), without importing JAX into host code."""
    legal = legal_morphisms(op, space)
    return int(legal[rng.integers(len(legal))]) if legal else None


KindProbs = Callable[[OpSpec, Sequence[int]], np.ndarray]
"""(parent, its legal kinds) → the probability of each of those kinds (weighted selection)."""


def _draw_kind(op: OpSpec, space: SearchSpace, rng: np.random.Generator,
               kind_probs: KindProbs | None) -> tuple[int | None, float | None]:
    """(kind, its probability): uniform as `_sample_kind` (the same single draw, probability
    None) without `kind_probs`; else one `rng.random()` through the CDF of `kind_probs`."""
    if kind_probs is None:
        return _sample_kind(op, space, rng), None
    legal = legal_morphisms(op, space)
    if not legal:
        return None, None
    p = np.asarray(kind_probs(op, legal), np.float64)
    cdf = np.cumsum(p)
    i = min(int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right")), len(legal) - 1)
    return int(legal[i]), float(p[i] / cdf[-1])


def replace_edge(edge: EdgePool, alpha_survivors: np.ndarray, n_new: int, *,
                 space: SearchSpace, rng: np.random.Generator, max_tries: int = MAX_TRIES,
                 revisit_after: int = REVISIT_AFTER, kind_probs: KindProbs | None = None
                 ) -> tuple[EdgePool, tuple[Birth, ...], int]:
    """Appends up to `n_new` children morphed from the edge's current ops (the survivors).

    Each try draws a parent by softmax(α) and a legal morphism: uniformly, or by `kind_probs`
    (the weighted selection; its births record their kind's probability). The child is
    accepted if it is neither in the pool (children included) nor in the edge's history; after
    `revisit_after` failed tries, history ops that are not in the pool are accepted too. Stops
    after `n_new` children or `max_tries` tries. Returns the new edge (history extended), the
    births in order and the number of failed tries.
    """
    a = _check_alpha(edge, alpha_survivors)
    if n_new < 0:
        raise ValueError(f"n_new must be >= 0, got {n_new}")
    survivors = edge.ops
    pool = list(survivors)
    births: list[Birth] = []
    failed = 0
    for _ in range(max_tries):
        if len(births) == n_new:
            break
        parent = sample_parent(survivors, a, rng)
        kind, prob = _draw_kind(parent, space, rng, kind_probs)
        child = None if kind is None else apply_change(kind, parent)
        if (child is None or child in pool
                or (child in edge.history and failed < revisit_after)):
            failed += 1
            continue
        pool.append(child)
        births.append(Birth(child, parent, kind, returned=child in edge.history,
                            probability=prob))
    return EdgePool(tuple(pool), edge.history | {b.child for b in births}), tuple(births), failed


def n_survivors(current: int, keep: int, morphs: int) -> int:
    """Ops kept by pruning: `keep - morphs`, or all of them if the edge has fewer."""
    return min(current, keep - morphs)


def _check_transition(keep: int, morphs: int) -> None:
    if keep < 1:
        raise ValueError(f"keep must be >= 1, got {keep}")
    if not 0 <= morphs < keep:
        raise ValueError(f"morphs must satisfy 0 <= morphs < keep, got morphs={morphs}, "
                         f"keep={keep}")


def step_pools(pools: CellPools, alphas: Mapping[str, Sequence[np.ndarray]], *, keep: int,
               morphs: int, final: bool, space: SearchSpace, rng: np.random.Generator,
               max_tries: int = MAX_TRIES, revisit_after: int = REVISIT_AFTER,
               kind_probs: KindProbs | None = None) -> tuple[CellPools, PoolReport]:
    """The end-of-cycle step on every edge: prune by α, then replace by morphing survivors.

    `alphas[cell_type][e]` holds edge e's α in pool order. The best conv is protected unless
    `final`. Edges are processed normal 0..13 then reduce 0..13, all drawing from `rng`, so a
    seeded generator reproduces the step. `kind_probs` (None: uniform kinds, the paper) is
    passed to `replace_edge`.
    """
    _check_transition(keep, morphs)
    new: dict[str, list[EdgePool]] = {}
    reports: dict[str, list[EdgeReport]] = {}
    for cell in CELL_TYPES:
        edges, cell_alphas = pools[cell], alphas[cell]
        if len(cell_alphas) != len(edges):
            raise ValueError(f"{len(cell_alphas)} alpha vectors for {len(edges)} {cell} edges")
        new[cell], reports[cell] = [], []
        for edge, alpha in zip(edges, cell_alphas):
            a = _check_alpha(edge, alpha)
            pruned, kept_alpha, dropped = prune_edge(
                edge, a, n_survivors(len(edge), keep, morphs), keep_best_conv=not final)
            grown, added, failed = replace_edge(pruned, kept_alpha, morphs, space=space, rng=rng,
                                                max_tries=max_tries,
                                                revisit_after=revisit_after,
                                                kind_probs=kind_probs)
            new[cell].append(grown)
            reports[cell].append(EdgeReport(edge.ops, tuple(float(v) for v in a), dropped,
                                            pruned.ops, added, failed))
    return (CellPools(**{c: tuple(new[c]) for c in CELL_TYPES}),
            PoolReport(keep, morphs, final, **{c: tuple(reports[c]) for c in CELL_TYPES}))


def validate_schedule(epochs: Iterable[int], grace: Iterable[int], morphs: Iterable[int],
                      keep: Iterable[int], prefix: str = "config.schedule") -> None:
    """Raises ValueError, naming the offending key, unless the cycle schedule is usable.

    Per cycle: epochs >= 1, 0 <= grace < epochs (α must train at least one epoch before it
    prunes), keep >= 1, 0 <= morphs < keep (a parent must survive). The last keep must be 1 so
    that every edge ends with one op for the genotype.
    """
    lists = {"epochs": list(epochs), "grace": list(grace), "morphs": list(morphs),
             "keep": list(keep)}
    lengths = {k: len(v) for k, v in lists.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"{prefix}: epochs, grace, morphs and keep need one entry per cycle, "
                         f"got lengths {lengths}; set all four, e.g. "
                         f"--{prefix}.epochs='(3,2)' --{prefix}.grace='(1,0)' "
                         f"--{prefix}.morphs='(2,0)' --{prefix}.keep='(2,1)'")
    if not lists["epochs"]:
        raise ValueError(f"{prefix}.epochs: the schedule needs at least one cycle")

    def fail(key: str, cycle: int, why: str) -> None:
        raise ValueError(f"{prefix}.{key}[{cycle}] = {lists[key][cycle]}: {why}")

    for c, (e, g, m, k) in enumerate(zip(*lists.values())):
        if e < 1:
            fail("epochs", c, "a cycle needs at least one epoch")
        if not 0 <= g < e:
            fail("grace", c, f"grace epochs must satisfy 0 <= grace < epochs ({e})")
        if k < 1:
            fail("keep", c, "at least one candidate must be kept per edge")
        if not 0 <= m < k:
            fail("morphs", c, f"morphs must satisfy 0 <= morphs < keep ({k}) so a parent "
                              "survives")
    if lists["keep"][-1] != 1:
        fail("keep", len(lists["keep"]) - 1,
             "the last cycle must keep 1 op per edge to give a genotype")


__all__ = ["CELL_TYPES", "MAX_TRIES", "REVISIT_AFTER", "Birth", "CellPools", "EdgePool",
           "EdgeReport", "PoolReport", "initial_pools", "n_survivors", "prune_edge",
           "replace_edge", "sample_parent", "softmax", "step_pools", "validate_schedule"]
