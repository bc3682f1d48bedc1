"""The ablation's variants: named config overrides of the search, in one registry.

A variant maps the search config (after the ablation's `--set` overrides and the entry's own
`key=value` parts) to overrides in the search CLI's own syntax (`--config.<key>=<value>`
without the prefix), so the same strings go into the job's command line. A `--variants` entry
is one or more parts joined by `+`; a part is a registry name or a `key=value` override.
`weighted+skips` combines two variants; `schedule.epochs=(2,2,2,2)` or `uniform+lr_max=0.1` is
a schedule or hyper-parameter point (the schedule search hooks), and `layers=8+deepen` deepens
to 8 cells. Entries are separated by commas outside brackets; `+` separates parts only outside
brackets and before a registry name or a known `key=`, so values may hold `+` (`lr_max=1e+0`).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
from typing import Callable, Collection, Mapping

import ml_collections

from prdarts_jax.ablation.configs import refuse_reserved
from prdarts_jax.errors import ConfigError
from prdarts_jax.runtime.flags import flatten

Overrides = tuple[tuple[str, str], ...]
"""(dotted config key, value as on the command line) pairs, applied in order."""
ConfigOf = Callable[[Overrides, str], ml_collections.ConfigDict]
"""(an entry's key=value pairs, where) -> the search config after `--set` and those pairs."""

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


def _starts_part(rest: str, keys: Collection[str]) -> bool:
    """Whether the text after a `+` begins a new part: a registry name (then `+` or the end)
    or a known config key followed by `=`."""
    match = re.match(r"\s*([A-Za-z_][\w.]*)\s*(=|\+|$)", rest)
    if match is None:
        return False
    word, after = match.groups()
    return word in keys if after == "=" else word in REGISTRY


def split_parts(entry: str, keys: Collection[str]) -> list[str]:
    """An entry's parts: `+` splits only outside brackets and only before a registry name or
    a `key=` of a known key, so a value may hold `+` (`lr_max=1e+0`)."""
    out, depth, start = [], 0, 0
    for i, ch in enumerate(entry):
        depth += ch in "([{"
        depth -= ch in ")]}"
        if ch == "+" and depth == 0 and _starts_part(entry[i + 1:], keys):
            out.append(entry[start:i].strip())
            start = i + 1
    out.append(entry[start:].strip())
    return out


def _bad_part(part: str, keys: Collection[str], entry: str) -> ConfigError:
    """The one-line error for a part that is neither a registry name nor `known_key=value`
    (it may hold several unsplit tokens, `uniform+gumble`: name the first bad one)."""
    for token in (t.strip() for t in part.split("+")):
        key, sep, value = (x.strip() for x in token.partition("="))
        if sep and (not key or not value):
            return ConfigError(f"--variants entry {entry!r}: {token!r} must be key=value, "
                               "e.g. schedule.epochs=(2,2,2,2)")
        if sep and key not in keys:
            close = difflib.get_close_matches(key, list(keys), n=2, cutoff=0.6)
            hint = f"did you mean {' or '.join(close)}? " if close else ""
            return ConfigError(f"--variants entry {entry!r}: the search config has no field "
                               f"{key!r}; {hint}(python -m prdarts_jax.search --help lists "
                               "the fields)")
        if not sep and token not in REGISTRY:
            close = difflib.get_close_matches(token, list(REGISTRY), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            return ConfigError(f"--variants: unknown variant {token!r}; {hint}use some of "
                               f"{', '.join(REGISTRY)} or key=value overrides joined by '+'")
    return ConfigError(f"--variants entry {entry!r}: cannot read {part!r}")


def _variant(entry: str, keys: Collection[str], config_of: ConfigOf) -> Variant:
    """The entry's `key=value` parts are applied first (after `--set`); its registry names
    are computed from that config; the explicit parts come last, so they win."""
    pairs: Overrides = ()
    names: list[str] = []
    for part in split_parts(entry, keys):
        key, sep, value = (x.strip() for x in part.partition("="))
        if sep and key in keys and value:
            pairs += ((key, value),)
        elif not sep and part in REGISTRY:
            names.append(part)
        else:
            raise _bad_part(part, keys, entry)
    refuse_reserved(pairs, f"--variants {entry!r}:")
    config = config_of(pairs, f"variant {entry!r}")
    computed: Overrides = sum((REGISTRY[name][1](config) for name in names), ())
    return Variant(entry, slug(entry), computed + pairs)


def parse_variants(text: str, config_of: ConfigOf) -> list[Variant]:
    """The `--variants` entries; `config_of(pairs, where)` is the search config after `--set`
    and then `pairs` (`configs.entry_configs`). ConfigError (one line) on an unknown name or
    key, a malformed part, a field the ablation sets per job, or two entries with one
    directory name."""
    keys = frozenset(flatten(config_of((), "--set")))
    variants = [_variant(entry, keys, config_of) for entry in split_entries(text)]
    if not variants:
        raise ConfigError("--variants is empty; name at least one, e.g. --variants uniform")
    seen: Mapping[str, str] = {}
    for v in variants:
        if v.slug in seen:
            raise ConfigError(f"--variants {seen[v.slug]!r} and {v.name!r} share the directory "
                              f"{v.slug!r}; name each variant once")
        seen = {**seen, v.slug: v.name}
    return variants
