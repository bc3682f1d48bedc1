"""The search config each ablation job will run with, read here before any job starts.

The file and the `--config.<key>=value` overrides are parsed by ml_collections' own flag
parser, exactly as the search CLI will parse the job's command line, and then validated by
`search.config.validate`: a bad key or value stops the ablation with one line naming the
variant, before any search runs.
"""

from __future__ import annotations

import difflib
from typing import Sequence

import ml_collections
from absl import flags
from ml_collections import config_flags

from prdarts_jax.errors import ConfigError
from prdarts_jax.runtime.flags import flatten, load_config_file
from prdarts_jax.search.config import validate

Pairs = Sequence[tuple[str, str]]


def pairs_of(texts: Sequence[str], flag: str) -> tuple[tuple[str, str], ...]:
    """`["k=v", ...]` -> (("k", "v"), ...); ConfigError on an entry without `=`."""
    out = []
    for text in texts:
        key, sep, value = text.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{flag} {text!r} must be key=value (e.g. {flag} channels=4)")
        out.append((key.strip(), value.strip()))
    return tuple(out)


def _check_keys(config: ml_collections.ConfigDict, pairs: Pairs, where: str) -> None:
    fields = flatten(config)
    for key, _ in pairs:
        if key not in fields:
            close = difflib.get_close_matches(key, list(fields), n=2, cutoff=0.6)
            hint = f"did you mean {' or '.join(close)}? " if close else ""
            raise ConfigError(f"{where}: the search config has no field {key!r}; {hint}"
                              "(python -m prdarts_jax.search --help lists the fields)")


def search_config(path: str, pairs: Pairs, where: str = "--set",
                  check: bool = True) -> ml_collections.ConfigDict:
    """The config of `path` with `pairs` applied as the search CLI applies them; validated
    unless `check` is False. ConfigError (one line, starting with `where`) on a bad pair."""
    base = load_config_file(path)
    _check_keys(base, pairs, where)
    argv = ["ablate", "--config", path, *(f"--config.{k}={v}" for k, v in pairs)]
    values = flags.FlagValues()
    holder = config_flags.DEFINE_config_file("config", None, "search config",
                                             flag_values=values, sys_argv=argv)
    try:
        values(argv)
    except (flags.Error, ValueError, TypeError) as err:
        text = str(err).splitlines()[0].removeprefix("flag ")
        raise ConfigError(f"{where}: {text}") from None
    config = holder.value
    if check:
        try:
            validate(config)
        except ConfigError as err:
            raise ConfigError(f"{where}: {err}") from None
    return config
