"""The variant registry and the `--variants` syntax: each name's overrides, composition with
`+`, schedule points, and one-line errors."""

import pytest

from prdarts_jax.ablation import variants as V
from prdarts_jax.ablation.configs import search_config
from prdarts_jax.errors import ConfigError
from tests.helpers import ROOT

QUICK = f"{ROOT}/configs/quick.py"


@pytest.fixture(scope="module")
def quick():
    return search_config(QUICK, ())


def test_registry_overrides_fit_the_config(quick):
    by_name = {v.name: dict(v.overrides) for v in V.parse_variants(",".join(V.REGISTRY), quick)}
    assert by_name == {
        "uniform": {},
        "weighted": {"morph_selection": "weighted"},
        "gumbel": {"relaxation": "gumbel", "schedule.tau": "(1.0,0.7667,0.5333,0.3)"},
        "deepen": {"schedule.cells": "(3,4,5,5)"},
        "flops": {"cost_penalty": str(V.COST_PENALTY)},
        "skips": {"genotype_max_skips": "2"}}
    for name in V.REGISTRY:   # every registry variant is a valid search config
        search_config(QUICK, V.parse_variants(name, quick)[0].overrides)


def test_schedules_follow_the_cycle_count():
    assert V.gumbel_taus(1) == (1.0,) and V.gumbel_taus(2) == (1.0, 0.3)
    assert V.deepen_cells(4, 5) == (3, 4, 5, 5)
    assert V.deepen_cells(2, 8) == (3, 8)
    assert V.deepen_cells(9, 20) == (7, 9, 11, 13, 14, 16, 18, 20, 20)


def test_entries_compose_and_carry_schedule_points(quick):
    got = V.parse_variants("weighted+skips, schedule.epochs=(2,2,2,2)+lr_max=0.1", quick)
    assert [(v.name, v.slug, v.overrides) for v in got] == [
        ("weighted+skips", "weighted+skips",
         (("morph_selection", "weighted"), ("genotype_max_skips", "2"))),
        ("schedule.epochs=(2,2,2,2)+lr_max=0.1", "schedule.epochs=2-2-2-2+lr_max=0.1",
         (("schedule.epochs", "(2,2,2,2)"), ("lr_max", "0.1")))]


@pytest.mark.parametrize("text, message", [
    ("uniform,wieghted", "unknown variant 'wieghted'; did you mean 'weighted'?"),
    ("uniform,=3", "'=3' must be key=value"),
    ("a=(1,2),a=(1;2)", "share the directory 'a=1-2'"),
    (",", "--variants is empty")])
def test_bad_entries_are_one_line_errors(quick, text, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("?", r"\?")) as e:
        V.parse_variants(text, quick)
    assert "\n" not in str(e.value)
