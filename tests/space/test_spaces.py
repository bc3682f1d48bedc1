import math

import pytest
from hypothesis import given, settings

from prdarts_jax.space.opspec import OpSpec
from prdarts_jax.space.spaces import (
    PRESETS,
    SearchSpace,
    apply_change,
    cell_configurations,
    get_space,
    is_legal,
    legal_morphisms,
    reachable_convs,
)
from tests.helpers.strategies import conv_ops, ops, spaces


def test_dl_has_exactly_twelve_convs():
    convs = reachable_convs(PRESETS["DL"])
    expected = {OpSpec.conv(k, m, d) for k in (3, 5, 7) for d in (1, 2) for m in ((), (1,))}
    assert convs == expected


def test_dr_enumeration_counts_k1_which_the_paper_omits():
    convs = reachable_convs(PRESETS["DR"])
    assert len(convs) == 42
    assert len([o for o in convs if o.k != 1]) == 36  # the paper's Table 2 value
    assert OpSpec.conv(1, (), 2) not in convs


def test_cell_counts_and_ratio_to_darts():
    assert cell_configurations(8) == 1 * 3 * 6 * 10 * 8 ** 8
    dl = cell_configurations(15)
    assert math.isclose(dl, 4.6e11, rel_tol=0.01)
    assert math.isclose(cell_configurations(8), 3.0e9, rel_tol=0.01)
    assert 150 < dl / cell_configurations(8) < 155


def test_ur_is_unbounded_without_step_limit():
    with pytest.raises(ValueError, match="unbounded"):
        reachable_convs(PRESETS["UR"])
    assert len(reachable_convs(PRESETS["UR"], 1)) == 5  # k3->k5, k1, dil2, insert


@pytest.mark.parametrize("kwargs, msg", [
    (dict(min_k=5, max_k=3), "min_k"), (dict(min_k=2), "odd"), (dict(max_dil=0), "max_dil"),
    (dict(max_k=4), "odd"), (dict(max_len=-1), "max_len"), (dict(max_width=0), "max_width"),
])
def test_invalid_restrictions_raise(kwargs, msg):
    base = dict(name="x", min_k=3, max_k=7, max_dil=2, max_len=1, max_sum=1, max_width=1)
    with pytest.raises(ValueError, match=msg):
        SearchSpace(**{**base, **kwargs})


def test_unknown_preset_and_custom_override():
    with pytest.raises(ValueError, match="unknown search space 'XX'"):
        get_space("XX")
    custom = get_space("dl", max_k=5)
    assert custom.max_k == 5 and custom.min_k == 3
    assert len(reachable_convs(custom)) == 8


@pytest.mark.parametrize("op", [OpSpec.pool("max"), OpSpec.pool("avg"), OpSpec.skip()])
def test_pools_and_skip_have_no_morphisms(op):
    assert legal_morphisms(op, PRESETS["UR"]) == ()


def test_spec_refusal_rules_examples():
    dl, dr = PRESETS["DL"], PRESETS["DR"]
    assert legal_morphisms(OpSpec.conv(3), dl) == (0, 2, 4)
    assert legal_morphisms(OpSpec.conv(7, (1,), 2), dl) == (1, 3)
    assert not is_legal(1, OpSpec.conv(3, (), 2), dr)  # k -> 1 with dil 2
    assert is_legal(1, OpSpec.conv(3), dr)
    assert not is_legal(2, OpSpec.conv(1), dr)  # dilating a 1x1
    assert apply_change(5, OpSpec.conv(3, (2, 1, 1))) == OpSpec.conv(3, (2, 2, 1))
    assert not is_legal(5, OpSpec.conv(3, (5,)), dr)  # width bound
    assert not is_legal(4, OpSpec.conv(3, (1,)), dr)  # length bound


@settings(max_examples=300, deadline=None)
@given(conv_ops(), spaces())
def test_legal_children_stay_in_space_and_non_increasing(op, space):
    for kind in legal_morphisms(op, space):
        child = apply_change(kind, op)
        assert list(child.c_mul) == sorted(child.c_mul, reverse=True)
        assert child != op
        if space.allows(op):
            assert space.allows(child), (op, kind, child)


@settings(max_examples=50, deadline=None)
@given(spaces())
def test_reachable_ops_respect_restrictions(space):
    for op in reachable_convs(space, 4):
        assert space.allows(op)


@given(ops(), spaces())
def test_legal_morphisms_match_rule_function(op, space):
    assert legal_morphisms(op, space) == tuple(k for k in range(6) if is_legal(k, op, space))
