"""The configs the ablation's jobs will run with, read here before any job starts.

The file and the `--config.<key>=value` overrides are parsed by ml_collections' own flag
parser, exactly as the search (or train) CLI will parse the job's command line, and then
validated by `search.config.validate` (`train.config.validate`): a bad key or value stops the
ablation with one line naming the variant or flag, before any job runs. Overrides may not set
the fields the ablation sets per job (seed, space, dataset; a retraining's genotype).
"""

from __future__ import annotations

import difflib
from typing import Any, Callable, Mapping, Sequence

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


RESERVED = {"seed": "--seeds", "space": "--config", "dataset": "--config"}
"""Fields each job gets from the ablation itself (after the overrides on its command line, so
an override would silently replace them): key -> the flag that decides it."""
TRAIN_RESERVED = {"seed": "--train_seed", "dataset": "--config (the search's dataset)",
                  "genotype": "the search (its genotype.json)"}
"""The same for the retrainings."""
PLACEHOLDER_GENOTYPE = "DL2"
"""Stands in for the search's genotype.json (written later) when a retraining's config is
validated before anything runs."""


def refuse_reserved(pairs: Pairs, where: str,
                    reserved: Mapping[str, str] = RESERVED) -> None:
    """ConfigError (one line) when an override sets a field the ablation sets per job."""
    for key, value in pairs:
        if key in reserved:
            raise ConfigError(f"{where} {key}={value}: {key} is set per job by the ablation "
                              f"(from {reserved[key]}); remove it")


def _check_keys(config: ml_collections.ConfigDict, pairs: Pairs, where: str,
                program: str) -> None:
    fields = flatten(config)
    for key, _ in pairs:
        if key not in fields:
            close = difflib.get_close_matches(key, list(fields), n=2, cutoff=0.6)
            hint = f"did you mean {' or '.join(close)}? " if close else ""
            raise ConfigError(f"{where}: the {program} config has no field {key!r}; {hint}"
                              f"(python -m prdarts_jax.{program} --help lists the fields)")


def _parsed(path: str, pairs: Pairs, where: str, program: str) -> ml_collections.ConfigDict:
    """The config of `path` with `pairs` applied by ml_collections' flag parser, as the
    program's CLI applies its `--config.<key>=value` flags."""
    base = load_config_file(path)
    _check_keys(base, pairs, where, program)
    argv = ["ablate", "--config", path, *(f"--config.{k}={v}" for k, v in pairs)]
    values = flags.FlagValues()
    holder = config_flags.DEFINE_config_file("config", None, f"{program} config",
                                             flag_values=values, sys_argv=argv)
    try:
        values(argv)
    except (flags.Error, ValueError, TypeError) as err:
        text = str(err).splitlines()[0].removeprefix("flag ")
        raise ConfigError(f"{where}: {text}") from None
    return holder.value


def _validated(config: ml_collections.ConfigDict, check: Callable[[Any], None],
               where: str) -> ml_collections.ConfigDict:
    try:
        check(config)
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None
    return config


def search_config(path: str, pairs: Pairs, where: str = "--set",
                  check: bool = True) -> ml_collections.ConfigDict:
    """The config of `path` with `pairs` applied as the search CLI applies them; validated
    unless `check` is False. ConfigError (one line, starting with `where`) on a bad pair."""
    config = _parsed(path, pairs, where, "search")
    return _validated(config, validate, where) if check else config


def train_config(args: Sequence[str], where: str) -> ml_collections.ConfigDict:
    """The config a retraining job's command line (`Job.args`: `-m prdarts_jax.train
    --config F --config.k=v ... --workdir W`) gives the train CLI, validated by
    `train.config.validate` with PLACEHOLDER_GENOTYPE for the genotype (the search that
    writes it has not run yet). ConfigError (one line, starting with `where`)."""
    from prdarts_jax.train.config import validate as validate_train
    path = args[list(args).index("--config") + 1]
    pairs = []
    for arg in args:
        if arg.startswith("--config."):
            key, _, value = arg[len("--config."):].partition("=")
            pairs.append((key, PLACEHOLDER_GENOTYPE if key == "genotype" else value))
    return _validated(_parsed(path, pairs, where, "train"), validate_train, where)


def entry_configs(path: str, set_pairs: Pairs
                  ) -> Callable[[Pairs, str], ml_collections.ConfigDict]:
    """`config_of` for `variants.parse_variants`: (an entry's pairs, where) -> the config of
    `path` after `set_pairs` and then those pairs (parsed, not yet validated)."""
    return lambda pairs, where: search_config(path, (*set_pairs, *pairs), where, check=False)
