import re

import pytest
from hypothesis import given

from prdarts_jax.space.opspec import INITIAL_POOL, NOTATION_LEGEND, OpSpec
from tests.helpers.strategies import ops


@given(ops())
def test_string_round_trip(op):
    assert OpSpec.parse(str(op)) == op
    assert hash(OpSpec.parse(str(op))) == hash(op)


@given(ops())
def test_notation_parses_back(op):
    assert OpSpec.parse(op.notation) == op
    assert " " not in op.notation and op.notation == op.notation.lower()


@pytest.mark.parametrize("text, expected", [
    ("conv(k5,[1])", OpSpec.conv(5, (1,))),
    ("conv(k3,[])", OpSpec.conv(3)),
    ("conv(k3,[1,1,1])", OpSpec.conv(3, (1, 1, 1))),
    ("conv(k3,[],dil=2)", OpSpec.conv(3, (), 2)),
    ("maxpool3", OpSpec.pool("max")),
    ("sep_conv_3x3", OpSpec.conv(3, (1,))),
    ("dil_conv_5x5", OpSpec.conv(5, (), 2)),
    ("skip_connect", OpSpec.skip()),
])
def test_parse_compact_and_darts_forms(text, expected):
    assert OpSpec.parse(text) == expected


def test_canonical_strings_and_notation():
    op = OpSpec.conv(5, (1,), dil=2)
    assert str(op) == "conv_k5_d2_m1"
    assert op.notation == "conv(k5,[1],dil=2)"
    assert OpSpec.conv(3).notation == "conv(k3,[])"
    assert OpSpec.conv(3, (), 2).notation == "conv(k3,[],dil=2)"
    assert OpSpec.conv(3, (1, 1)).notation == "conv(k3,[1,1])"
    assert str(OpSpec.conv(3, (2, 1, 1))) == "conv_k3_d1_m2-1-1"
    assert [o.notation for o in INITIAL_POOL] == ["maxpool3", "avgpool3", "skip", "conv(k3,[])"]
    assert [str(o) for o in INITIAL_POOL] == ["maxpool3", "avgpool3", "skip", "conv_k3_d1"]


@pytest.mark.parametrize("op", [OpSpec.conv(5, (1,)), OpSpec.conv(3, (), 2), OpSpec.conv(7),
                                OpSpec.conv(1, (1,)), OpSpec.conv(3, (2, 1, 1), 2),
                                OpSpec.conv(3, (1, 1)), OpSpec.pool("max"), OpSpec.pool("avg"),
                                OpSpec.skip()])
def test_notation_round_trip_for_a_variety_of_ops(op):
    assert OpSpec.parse(op.notation) == op


def test_the_legend_explains_every_form_of_the_notation():
    """One plain-text paragraph (no markup) that names each form and what c_mul means."""
    for term in ("conv(kK,[m1,...,mn],dil=D)", "maxpool3", "avgpool3", "skip",
                 "FactorizedReduce", "mi×C", "stride 2"):
        assert term in NOTATION_LEGEND
    assert "<" not in NOTATION_LEGEND and "\n" not in NOTATION_LEGEND


@pytest.mark.parametrize("bad", ["conv_k4_d1", "conv_k3_d0", "foo", "minpool3", "conv(k3,[0])",
                                 "", "conv_k3_d1_m"])
def test_bad_strings_raise_naming_the_string(bad):
    with pytest.raises(ValueError, match=re.escape(repr(bad))):
        OpSpec.parse(bad)


def test_frozen_hashable_ordered():
    a, b = OpSpec.conv(3), OpSpec.conv(5)
    assert len({a, OpSpec.conv(3), b}) == 2
    assert sorted([b, a]) == [a, b]
    with pytest.raises(Exception):
        a.k = 7
