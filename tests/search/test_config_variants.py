"""The variants' options in the search config: an option whose switch is off is refused in one
line, since the run would be the paper's under another name."""

import pytest

from prdarts_jax.errors import ConfigError
from prdarts_jax.search.config import base_config, validate


def _config(**fields):
    config = base_config()
    config.dataset = "digits"
    for key, value in fields.items():
        node, *path = key.split(".")
        target = config
        for part in [node, *path][:-1]:
            target = target[part]
        target[key.split(".")[-1]] = value
    return config


@pytest.mark.parametrize("key, value, switch", [
    ("schedule.tau", (0.5,) * 9, "relaxation=gumbel"),
    ("gumbel_hard", True, "relaxation=gumbel"),
    ("morph_temperature", 0.5, "morph_selection=weighted"),
    ("morph_floor", 0.2, "morph_selection=weighted"),
])
def test_an_option_of_a_switched_off_variant_is_refused(key, value, switch):
    with pytest.raises(ConfigError, match=f"config.{key}=.* has no effect .* --config.{switch}"):
        validate(_config(**{key: value}))
    name, on = switch.split("=")
    validate(_config(**{key: value, name: on}))


def test_cost_measure_needs_a_penalty():
    with pytest.raises(ConfigError, match="cost_measure='params' has no effect"):
        validate(_config(cost_measure="params"))
    validate(_config(cost_measure="params", cost_penalty=0.1))


def test_cells_are_whole_numbers():
    with pytest.raises(ConfigError, match="whole number >= 3"):
        validate(_config(**{"schedule.cells": (3.5,) * 9}))
