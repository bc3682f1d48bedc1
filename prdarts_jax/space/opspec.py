"""Candidate operations as small immutable values.

An `OpSpec` names one candidate operation of PR-DARTS (SPEC §1): a 3×3 pool, a skip
connection, or a stack of separable convolutions (kernel `k`, dilation `dil`, expansion list
`c_mul`). Its canonical string (`str(op)`, `conv_k5_d1_m1`) is data: the key of the op's
parameters in a network's parameter tree and its form in JSON. What a user reads is
`op.notation`, the spec's compact form (`conv(k5,[1])`, `conv(k3,[],dil=2)`, `maxpool3`,
`skip`), explained by `NOTATION_LEGEND`; every genotype text, cell drawing, pool plot and report
table uses it. `OpSpec.parse` reads both forms back, and DARTS' op names.
"""

from __future__ import annotations

import dataclasses
import re

POOL_TYPES = ("max", "avg")
KINDS = ("pool", "skip", "conv")

_CANONICAL = re.compile(r"^conv_k(\d+)_d(\d+)(?:_m(\d+(?:-\d+)*))?$")
_COMPACT = re.compile(r"^conv\(k(\d+),\s*\[([\d,\s]*)\](?:,\s*dil=(\d+))?\)$")
_DARTS = {
    "max_pool_3x3": "maxpool3",
    "avg_pool_3x3": "avgpool3",
    "skip_connect": "skip",
    "sep_conv_3x3": "conv_k3_d1_m1",
    "sep_conv_5x5": "conv_k5_d1_m1",
    "sep_conv_7x7": "conv_k7_d1_m1",
    "dil_conv_3x3": "conv_k3_d2",
    "dil_conv_5x5": "conv_k5_d2",
}


@dataclasses.dataclass(frozen=True, order=True)
class OpSpec:
    """One candidate operation. Use the constructors `pool`, `skip`, `conv`."""

    kind: str
    pool_type: str = ""
    k: int = 0
    dil: int = 0
    c_mul: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown op kind {self.kind!r}; expected one of {KINDS}")
        if self.kind == "pool":
            if self.pool_type not in POOL_TYPES or self.k != 3 or self.dil or self.c_mul:
                raise ValueError(f"invalid pool op {self!r}: only max/avg 3x3 pools exist")
        elif self.kind == "skip":
            if self.pool_type or self.k or self.dil or self.c_mul:
                raise ValueError(f"invalid skip op {self!r}: skip takes no parameters")
        else:
            object.__setattr__(self, "c_mul", tuple(int(m) for m in self.c_mul))
            if self.pool_type or self.k < 1 or self.k % 2 == 0 or self.dil < 1:
                raise ValueError(
                    f"invalid conv op {self!r}: kernel must be odd and >= 1, dilation >= 1")
            if any(m < 1 for m in self.c_mul):
                raise ValueError(f"invalid conv op {self!r}: expansion entries must be >= 1")

    @staticmethod
    def pool(pool_type: str) -> "OpSpec":
        return OpSpec("pool", pool_type=pool_type, k=3)

    @staticmethod
    def skip() -> "OpSpec":
        return OpSpec("skip")

    @staticmethod
    def conv(k: int, c_mul: tuple[int, ...] = (), dil: int = 1) -> "OpSpec":
        return OpSpec("conv", k=k, dil=dil, c_mul=tuple(c_mul))

    @property
    def is_conv(self) -> bool:
        return self.kind == "conv"

    def __str__(self) -> str:
        if self.kind == "pool":
            return f"{self.pool_type}pool3"
        if self.kind == "skip":
            return "skip"
        tail = f"_m{'-'.join(map(str, self.c_mul))}" if self.c_mul else ""
        return f"conv_k{self.k}_d{self.dil}{tail}"

    @property
    def notation(self) -> str:
        """The one display form (the spec's compact notation): `conv(k5,[1])`,
        `conv(k3,[],dil=2)`, `conv(k3,[1,1])`, `maxpool3`, `avgpool3`, `skip`. It parses back
        with `OpSpec.parse`; see NOTATION_LEGEND."""
        if not self.is_conv:
            return str(self)
        dil = f",dil={self.dil}" if self.dil != 1 else ""
        return f"conv(k{self.k},[{','.join(map(str, self.c_mul))}]{dil})"

    @staticmethod
    def parse(text: str) -> "OpSpec":
        """Reads the canonical form, the spec's compact form or a DARTS op name."""
        s = _DARTS.get(str(text).strip(), str(text).strip())
        if s in ("maxpool3", "avgpool3"):
            return OpSpec.pool(s[:3])
        if s == "skip":
            return OpSpec.skip()
        try:
            if m := _CANONICAL.match(s):
                mul = tuple(int(v) for v in m.group(3).split("-")) if m.group(3) else ()
                return OpSpec.conv(int(m.group(1)), mul, dil=int(m.group(2)))
            if m := _COMPACT.match(s):
                mul = tuple(int(v) for v in m.group(2).replace(" ", "").split(",") if v)
                return OpSpec.conv(int(m.group(1)), mul, dil=int(m.group(3) or 1))
        except ValueError as err:
            raise ValueError(f"malformed op string {text!r}: {err}") from None
        raise ValueError(
            f"unknown op string {text!r}; expected e.g. 'maxpool3', 'avgpool3', 'skip', "
            "'conv_k5_d2_m1' or 'conv(k5,[1])'")


NOTATION_LEGEND = (
    "conv(kK,[m1,...,mn],dil=D) is a stack of n+1 separable convolutions (ReLU, depthwise K×K "
    "conv with dilation D, pointwise 1×1 conv, BatchNorm), all with the same K and D; dil=D is "
    "written only when D ≠ 1. Layer i widens to mi×C channels (C: the cell's channels) and the "
    "last layer returns to C, so conv(kK,[]) is one separable conv (with dil=2: DARTS' dil_conv), "
    "conv(kK,[1]) two stacked ones (DARTS' sep_conv) and conv(k3,[2]) goes C→2C→C. "
    "maxpool3 and avgpool3 are 3×3 max and average pools (the average excludes the padding). "
    "skip is the identity; at stride 2 it is a FactorizedReduce (two 1×1 stride-2 convs, the "
    "second on the input shifted by one pixel, concatenated). On a reduction cell's edges from "
    "its inputs every op runs at stride 2 (first layer only for a conv).")
"""How to read `OpSpec.notation`, in plain text (SPEC §1); the report shows it once."""


INITIAL_POOL: tuple[OpSpec, ...] = (
    OpSpec.pool("max"), OpSpec.pool("avg"), OpSpec.skip(), OpSpec.conv(3))
"""The initial candidate pool of every edge ("prdarts4")."""
