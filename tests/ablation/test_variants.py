"""The variant registry and the `--variants` syntax: each name's overrides, composition with
`+`, schedule points, registry names computed after the entry's own overrides, `+` inside
values, and one-line errors."""

import re

import pytest

from prdarts_jax.ablation import variants as V
from prdarts_jax.ablation.configs import entry_configs, search_config
from prdarts_jax.errors import ConfigError
from tests.helpers import ROOT

QUICK = f"{ROOT}/configs/quick.py"


@pytest.fixture(scope="module")
def quick():
    return entry_configs(QUICK, ())


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
    ("schedule.epochs=(2,2,2,2),schedule.epochs=( 2,2,2,2 )",
     "share the directory 'schedule.epochs=2-2-2-2'"),
    ("uniform+gumble", "unknown variant 'gumble'; did you mean 'gumbel'?"),
    ("weighted+lr_mx=0.1", "no field 'lr_mx'; did you mean lr_max or lr_min?"),
    ("skips+seed=3", ("--variants 'skips+seed=3': seed=3: seed is set per job by the "
                      "ablation (from --seeds); remove it")),
    ("space=DR", "space is set per job by the ablation (from --config)"),
    ("uniform+dataset=digits", "dataset is set per job by the ablation (from --config)"),
    (",", "--variants is empty")])
def test_bad_entries_are_one_line_errors(quick, text, message):
    with pytest.raises(ConfigError, match=re.escape(message)) as e:
        V.parse_variants(text, quick)
    assert "\n" not in str(e.value)


def test_registry_names_are_computed_after_the_entry_s_own_overrides(quick):
    three = ("schedule.epochs=(2,2,2)+schedule.grace=(1,0,0)+schedule.morphs=(1,0,0)"
             "+schedule.keep=(2,2,1)+gumbel")
    deeper = "layers=8+deepen"
    got = {v.name: v.overrides for v in V.parse_variants(f"{three},{deeper}", quick)}
    assert dict(got[three])["schedule.tau"] == "(1.0,0.65,0.3)"     # 3 cycles, not quick's 4
    assert got[deeper] == (("schedule.cells", "(3,6,8,8)"), ("layers", "8"))   # not (3,4,5,5)
    for overrides in got.values():   # and both are valid search configs
        search_config(QUICK, overrides)
    explicit = V.parse_variants("gumbel+schedule.tau=(0.5,0.5,0.5,0.5)", quick)[0].overrides
    assert explicit[-1] == ("schedule.tau", "(0.5,0.5,0.5,0.5)")   # an explicit part wins


def test_plus_splits_only_before_a_name_or_a_known_key(quick):
    keys = {"lr_max", "schedule.epochs", "channels"}
    assert V.split_parts("lr_max=1e+0+weighted+channels=4", keys) == [
        "lr_max=1e+0", "weighted", "channels=4"]
    assert V.split_parts("schedule.epochs=(1+1,2)+skips", keys) == [
        "schedule.epochs=(1+1,2)", "skips"]
    got = V.parse_variants("lr_max=1e+0,uniform+lr_max=2e+0", quick)
    assert [v.overrides for v in got] == [(("lr_max", "1e+0"),), (("lr_max", "2e+0"),)]
    search_config(QUICK, got[0].overrides)   # the search CLI parses the value as 1.0
