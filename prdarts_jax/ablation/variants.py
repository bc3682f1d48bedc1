"""The ablation's variants: named config overrides of the search, in one registry.

A variant maps the search config (after the ablation's `--set` overrides) to overrides in the
search CLI's own syntax (`--config.<key>=<value>` without the prefix), so the same strings go
into the job's command line. A `--variants` entry is one or more parts joined by `+`; a part is
a registry name or a `key=value` override. `weighted+skips` combines two variants;
`schedule.epochs=(2,2,2,2)` or `uniform+lr_max=0.1` is a schedule or hyper-parameter point
(the schedule search hooks). Entries are separated by commas outside parentheses.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
from typing import Callable, Mapping

import ml_collections

from prdarts_jax.errors import ConfigError

Overrides = tuple[tuple[str, str], ...]
"""(dotted config key, value as on the command line) pairs, applied in order."""

TAU_START, TAU_END = 1.0, 0.3
"""gumbel: the temperature falls linearly from TAU_START in the first cycle to TAU_END."""
COST_PENALTY = 0.1
"""flops: λ of the expected-cost term (see docs/variants.md, the cost section)."""
MAX_SKIPS = 2
"""skips: at most this many skip connections in the normal cell (as P-DARTS)."""


def _tuple(values) -> str:
    return "(" + ",".join(str(v) for v in values) + ("," if len(values) == 1 else "") + ")"


def gumbel_taus(n_cycles: int) -> tuple[float, ...]:
    """TAU_START … TAU_END, one temperature per cycle, linearly (one cycle: TAU_START)."""
    if n_cycles == 1:
        return (TAU_START,)
    step = (TAU_END - TAU_START) / (n_cycles - 1)
    return tuple(round(TAU_START + step * i, 4) for i in range(n_cycles))


def deepen_cells(n_cycles: int, layers: int) -> tuple[int, ...]:
    """Cells per cycle growing linearly from max(3, ⌈layers/3⌉) to `layers`, reached in the
    second-to-last cycle (the last cycles, which only prune, run at full depth):
    4 cycles, 5 layers -> (3, 4, 5, 5)."""
    start = max(3, math.ceil(layers / 3))
    reach = max(n_cycles - 2, 1)
    return tuple(layers if i >= reach else round(start + (layers - start) * i / reach)
                 for i in range(n_cycles))


def _cycles(config: ml_collections.ConfigDict) -> int:
    return len(config.schedule.epochs)


REGISTRY: dict[str, tuple[str, Callable[[ml_collections.ConfigDict], Overrides]]] = {
    "uniform": ("the paper: every default", lambda c: ()),
    "weighted": ("performance-weighted morphisms",
                 lambda c: (("morph_selection", "weighted"),)),
    "gumbel": (f"Gumbel-softmax relaxation, τ {TAU_START}→{TAU_END} over the cycles",
               lambda c: (("relaxation", "gumbel"),
                          ("schedule.tau", _tuple(gumbel_taus(_cycles(c)))))),
    "deepen": ("progressive deepening to config.layers",
               lambda c: (("schedule.cells", _tuple(deepen_cells(_cycles(c), c.layers))),)),
    "flops": (f"expected-cost penalty λ={COST_PENALTY}",
              lambda c: (("cost_penalty", str(COST_PENALTY)),)),
    "skips": (f"at most {MAX_SKIPS} skips in the normal cell",
              lambda c: (("genotype_max_skips", str(MAX_SKIPS)),)),
}
"""name -> (what it changes, config -> overrides)."""

DEFAULT_VARIANTS = tuple(REGISTRY)


@dataclasses.dataclass(frozen=True)
class Variant:
    """One row of the ablation: its entry text, a directory name, and its overrides."""

    name: str
    slug: str
    overrides: Overrides


def split_entries(text: str) -> list[str]:
    """`a,b+k=(1,2),c` -> ['a', 'b+k=(1,2)', 'c']: commas inside brackets do not split."""
    out, depth, current = [], 0, ""
    for ch in text:
        depth += ch in "([{"
        depth -= ch in ")]}"
        if ch == "," and depth == 0:
            out.append(current.strip())
            current = ""
        else:
            current += ch
    out.append(current.strip())
    return [e for e in out if e]


def slug(name: str) -> str:
    """A directory name for an entry: `schedule.epochs=(2,2)` -> `schedule.epochs=2-2`."""
    text = re.sub(r"[^A-Za-z0-9._+=-]+", "-", name)
    return re.sub(r"-*([=+])-*", r"\1", text).strip("-") or "variant"


def _part(part: str, config: ml_collections.ConfigDict, entry: str) -> Overrides:
    key, sep, value = part.partition("=")
    if sep:
        if not key.strip() or not value.strip():
            raise ConfigError(f"--variants entry {entry!r}: {part!r} must be key=value, e.g. "
                              "schedule.epochs=(2,2,2,2)")
        return ((key.strip(), value.strip()),)
    if part not in REGISTRY:
        close = difflib.get_close_matches(part, list(REGISTRY), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ConfigError(f"--variants: unknown variant {part!r}; {hint}use some of "
                          f"{', '.join(REGISTRY)} or key=value overrides joined by '+'")
    return REGISTRY[part][1](config)


def parse_variants(text: str, config: ml_collections.ConfigDict) -> list[Variant]:
    """The `--variants` entries against the search config (after `--set`); ConfigError (one
    line) on an unknown name, a malformed part, or two entries with one directory name."""
    variants: list[Variant] = []
    for entry in split_entries(text):
        overrides: Overrides = ()
        for part in entry.split("+"):
            overrides += _part(part.strip(), config, entry)
        variants.append(Variant(entry, slug(entry), overrides))
    if not variants:
        raise ConfigError("--variants is empty; name at least one, e.g. --variants uniform")
    seen: Mapping[str, str] = {}
    for v in variants:
        if v.slug in seen:
            raise ConfigError(f"--variants {seen[v.slug]!r} and {v.name!r} share the directory "
                              f"{v.slug!r}; name each variant once")
        seen = {**seen, v.slug: v.name}
    return variants
