"""Performance-weighted morphism selection (`morph_selection='weighted'`, docs/variants.md).

The paper draws a uniformly random legal morphism for each parent. The weighted variant keeps a
score per (morphism kind, parent class) from how that pair's children fared, and draws a kind
with probability ∝ softmax(score / τ) over the parent's legal kinds, mixed with a floor.

Definitions (pure, host-side, no JAX):
- parent class: the conv's shape family, `conv` (one layer, dil 1), `conv_stack` (>= 2 layers,
  dil 1), `dil` (one layer, dil >= 2), `dil_stack` (>= 2 layers, dil >= 2). Only convs have
  legal morphisms, so pools and skip never are parents. Scores are shared by both cell types.
- fate of a child born at the end of cycle c: its centred, normalised α rank on its edge at the
  end of cycle c + 1 (its first full cycle): `1 - 2 rank / (n - 1)` over the edge's n ops
  (rank 0: highest α, ties by pool position as pruning breaks them), so the best op scores +1,
  the worst -1, and the edge's mean is 0; an edge of one op gives 0.
- score of a key: the cumulative mean of its children's fates; 0 (neutral) before any child.
- probabilities for a parent with legal kinds L (n = |L|):
  `p_k = floor / n + (1 - floor) softmax(score(k, class) / τ)_k`, so every legal kind keeps at
  least `floor / n`, and floor 1 (or equal scores) is the uniform draw.

State between cycles is `MorphScores`: the totals per key and the births still awaiting their
fate. `scores_from(reports)` folds the PoolReports of the boundaries so far (the `report` of the
metrics.jsonl `cycle` records) into the same state the search carries; the search saves the state
in the checkpoint's meta (`morph_scores`), so a resume continues with exactly these numbers.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from prdarts_jax.space.opspec import OpSpec
from prdarts_jax.space.spaces import CELL_TYPES, MORPH_NAMES

PARENT_CLASSES = ("conv", "conv_stack", "dil", "dil_stack")
"""The parent-op classes a score is kept for (see the module docstring)."""

Key = tuple[int, str]
"""(morphism kind 0..5, parent class)."""


def parent_class(op: OpSpec) -> str:
    """The shape family of a conv parent: dilated or not, one layer or a stack."""
    if not op.is_conv:
        raise ValueError(f"only convs are morphed; got {op}")
    return ("dil" if op.dil > 1 else "conv") + ("_stack" if op.c_mul else "")


def fate(ops: Sequence[OpSpec], alpha: Sequence[float], child: OpSpec) -> float:
    """The child's centred, normalised α rank on its edge: +1 best, -1 worst, 0 alone."""
    n = len(ops)
    if n < 2:
        return 0.0
    a = np.asarray(alpha, np.float64)
    ranked = sorted(range(n), key=lambda i: (-a[i], i))
    return 1.0 - 2.0 * ranked.index(list(ops).index(child)) / (n - 1)


@dataclasses.dataclass(frozen=True)
class MorphScores:
    """`totals[(kind, class)] = (sum of fates, children)`; `pending`: births of the last
    boundary as (cell type, edge, child, parent, kind), judged at the next boundary."""

    totals: Mapping[Key, tuple[float, int]] = dataclasses.field(default_factory=dict)
    pending: tuple[tuple[str, int, str, str, int], ...] = ()

    def score(self, kind: int, cls: str) -> float:
        total, count = self.totals.get((kind, cls), (0.0, 0))
        return total / count if count else 0.0

    def to_json(self) -> dict:
        return {"totals": [[k, c, s, n] for (k, c), (s, n) in sorted(self.totals.items())],
                "pending": [list(p) for p in self.pending]}

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> "MorphScores":
        return MorphScores({(int(k), str(c)): (float(s), int(n)) for k, c, s, n in d["totals"]},
                           tuple((str(t), int(e), str(ch), str(p), int(k))
                                 for t, e, ch, p, k in d["pending"]))


def observe(scores: MorphScores, ops: Mapping[str, Sequence[Sequence[OpSpec]]],
            alphas: Mapping[str, Sequence[Sequence[float]]]) -> MorphScores:
    """Judges the pending births by the pools `ops[t][e]` and their α at the end of a cycle;
    adds their fates to the totals (in birth order) and clears `pending`."""
    totals = dict(scores.totals)
    for cell, edge, child, parent, kind in scores.pending:
        edge_ops = tuple(ops[cell][edge])
        child_op = OpSpec.parse(child)
        if child_op not in edge_ops:
            continue  # not on its edge any more: cannot happen in a search; nothing to judge
        key = (kind, parent_class(OpSpec.parse(parent)))
        total, count = totals.get(key, (0.0, 0))
        totals[key] = (total + fate(edge_ops, alphas[cell][edge], child_op), count + 1)
    return MorphScores(totals, ())


def with_births(scores: MorphScores, report: Any) -> MorphScores:
    """`scores` awaiting the fates of the births in `report` (a `pools.PoolReport`)."""
    pending = tuple((cell, e, str(b.child), str(b.parent), int(b.kind))
                    for cell in CELL_TYPES for e, rep in enumerate(report[cell])
                    for b in rep.added)
    return MorphScores(scores.totals, pending)


def scores_from(reports: Iterable[Any]) -> MorphScores:
    """The state after the given boundaries' PoolReports, in cycle order (the same fold the
    search does: each report's ops and α judge the previous report's births)."""
    scores = MorphScores()
    for report in reports:
        scores = observe(scores, {t: [r.ops for r in report[t]] for t in CELL_TYPES},
                         {t: [r.alpha for r in report[t]] for t in CELL_TYPES})
        scores = with_births(scores, report)
    return scores


def kind_probabilities(scores: MorphScores, parent: OpSpec, legal: Sequence[int], *,
                       temperature: float, floor: float) -> np.ndarray:
    """The probability of each legal kind (in `legal`'s order) for `parent`."""
    return _probabilities(scores, parent_class(parent), legal, temperature, floor)


def _probabilities(scores: MorphScores, cls: str, kinds: Sequence[int], temperature: float,
                   floor: float) -> np.ndarray:
    z = np.array([scores.score(k, cls) for k in kinds], np.float64) / temperature
    q = np.exp(z - z.max())
    return floor / len(kinds) + (1.0 - floor) * q / q.sum()


def selector(scores: MorphScores, *, temperature: float,
             floor: float) -> Callable[[OpSpec, Sequence[int]], np.ndarray]:
    """`kind_probs` for `pools.replace_edge`: the legal kinds' probabilities for a parent."""
    return lambda parent, legal: kind_probabilities(scores, parent, legal,
                                                    temperature=temperature, floor=floor)


def record(scores: MorphScores, *, temperature: float, floor: float) -> dict:
    """What the metrics `cycle` record shows: the scores used for this boundary's draws and,
    per parent class, the probabilities of all six kinds for a parent to which all are legal."""
    all_kinds = tuple(range(len(MORPH_NAMES)))
    rows = [{"kind": k, "morphism": MORPH_NAMES[k], "parent": c, "score": scores.score(k, c),
             "children": scores.totals[(k, c)][1]} for k, c in sorted(scores.totals)]
    probs = {cls: {MORPH_NAMES[k]: float(v) for k, v in
                   zip(all_kinds, _probabilities(scores, cls, all_kinds, temperature, floor))}
             for cls in PARENT_CLASSES}
    return {"temperature": temperature, "floor": floor, "scores": rows, "probabilities": probs}


__all__ = ["PARENT_CLASSES", "MorphScores", "fate", "kind_probabilities", "observe",
           "parent_class", "record", "scores_from", "selector", "with_births"]
