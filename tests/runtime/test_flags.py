"""The command-line layer: unknown config fields with suggestions, config files, value types,
the help text, and argparse mistakes as one line."""

import pytest

from prdarts_jax.errors import ConfigError
from prdarts_jax.runtime import flags as cli_flags
from prdarts_jax.runtime.config_checks import check_types
from prdarts_jax.search import config as search_config
from prdarts_jax.train import config as train_config
from tests.helpers import ROOT


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("error: ")
    return err


@pytest.mark.parametrize("key, suggested", [
    ("epochz", "config.schedule.epochs"), ("lr_mx", "config.lr_max"),
    ("schedule.epochz", "config.schedule.epochs"), ("batch.mni", "config.batch.min"),
    ("chanels", "config.channels")])
def test_an_unknown_field_names_the_closest_ones(capsys, key, suggested):
    with pytest.raises(SystemExit) as exit_:
        cli_flags.check_field(search_config.base_config(), key)
    assert exit_.value.code == 2
    err = _error_line(capsys)
    assert f"no field {key!r}" in err and suggested in err


def test_known_fields_and_groups_pass():
    config = search_config.base_config()
    for key in ("seed", "schedule.epochs", "restrictions.max_k", "batch"):
        cli_flags.check_field(config, key)


def test_a_missing_config_file_lists_those_that_exist(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    with pytest.raises(SystemExit):
        cli_flags.load_config_file("configs/nope.py")
    err = _error_line(capsys)
    assert "'configs/nope.py' not found" in err and "configs/quick.py" in err


def test_a_broken_config_file_is_one_line(capsys, tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def get_config(:\n")
    with pytest.raises(SystemExit):
        cli_flags.load_config_file(str(bad))
    assert "could not be loaded (line 1): SyntaxError" in _error_line(capsys)
    wrong = tmp_path / "wrong.py"
    wrong.write_text("def get_config():\n    return {}\n")
    with pytest.raises(SystemExit):
        cli_flags.load_config_file(str(wrong))
    assert "must return an ml_collections.ConfigDict" in _error_line(capsys)


@pytest.mark.parametrize("key, value, kind", [
    ("schedule.epochs", ("abc",), "tuple of ints"), ("schedule.keep", (2, 1.5), "tuple of ints"),
    ("channels", 8.5, "int"), ("space", 3, "str"), ("batch.variable", 1, "bool")])
def test_a_value_of_the_wrong_type_is_a_config_error(key, value, kind):
    config = search_config.base_config()
    parent, leaf = (config, key) if "." not in key else (config[key.split(".")[0]],
                                                          key.split(".")[1])
    with parent.ignore_type():
        parent[leaf] = value
    with pytest.raises(ConfigError, match=rf"config\.{key}=.* must be a {kind}"):
        check_types(config, search_config.base_config())


def test_ints_pass_as_numbers_and_unset_restrictions_pass():
    config = search_config.base_config()
    config.lr_max = 1
    config.restrictions.max_k = 7
    check_types(config, search_config.base_config())


@pytest.mark.parametrize("module", [search_config, train_config])
def test_every_config_field_has_a_meaning(module):
    assert set(cli_flags.flatten(module.base_config())) == set(module.FIELD_DOCS)
    assert all(doc.strip() for doc in module.FIELD_DOCS.values())


def test_the_help_lists_each_field_with_its_default_and_meaning(monkeypatch):
    monkeypatch.chdir(ROOT)
    program = cli_flags.Program("The search.", (), config_module="prdarts_jax.search.config")
    text = cli_flags.help_text(program, "configs/quick.py")
    assert text.startswith("The search.") and "defaults from configs/quick.py" in text
    line = next(x for x in text.splitlines() if x.split()[:1] == ["schedule.epochs"])
    assert "(3,3,2,2)" in line and search_config.FIELD_DOCS["schedule.epochs"] in line
    listed = {x.split()[0] for x in text.split("config fields")[1].splitlines()[1:] if x.strip()}
    assert set(search_config.FIELD_DOCS) <= listed


@pytest.mark.parametrize("argv, message", [
    (["abc"], "argument steps: 'abc' must be an integer 0..20"),
    (["--bogus"], "unrecognized arguments: --bogus")])
def test_argparse_mistakes_are_one_line(capsys, argv, message):
    from prdarts_jax.space.__main__ import main
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert message in _error_line(capsys)
