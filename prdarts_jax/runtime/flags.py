"""The command line of the config-driven CLIs (`search`, `train`, `evaluate`): absl flags and
`--config FILE --config.<key>=value`, read with one-line errors and a `--help` that lists the
config's fields with their meaning.

absl and ml_collections report a missing config file, an unknown field or a value of the wrong
type as a stack trace from deep inside their parsers; `flags_parser` checks those first and
turns whatever they still raise into one `error:` line (exit code 2).
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import glob
import importlib.util
import os
import re
import sys
from typing import Any, Callable, Mapping, NoReturn, Sequence

import ml_collections
from absl import flags

HELP_FLAGS = ("-h", "-?", "--help", "--helpshort", "--helpfull")
EXIT_USAGE = 2


@dataclasses.dataclass(frozen=True)
class Program:
    """What a CLI's help shows: its docstring, its own flags, and (for a `--config` program)
    the module with the base config and what each field means (`base_config()` and
    `FIELD_DOCS`, imported only when needed)."""

    doc: str
    flag_names: Sequence[str]
    config_module: str | None = None
    config_flag: str = "config"

    def base_and_docs(self) -> tuple[ml_collections.ConfigDict, Mapping[str, str]]:
        module = importlib.import_module(self.config_module)
        return module.base_config(), module.FIELD_DOCS


def fail(message: str) -> NoReturn:
    """Prints `error: message` (one line) and exits with 2."""
    print(f"error: {' '.join(str(message).split())}", file=sys.stderr)
    sys.exit(EXIT_USAGE)


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted key -> leaf value of a (nested) ConfigDict or dict."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, (ml_collections.ConfigDict, dict)):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def make_parser(program: Program) -> Callable[[list[str]], list[str]]:
    """The `flags_parser` for `absl.app.run(main, flags_parser=...)`."""
    return lambda argv: flags_parser(argv, program)


def flags_parser(argv: list[str], program: Program) -> list[str]:
    """Parses `argv` into absl's FLAGS; `--help` prints the help and exits 0; every mistake
    exits 2 with one line."""
    args = argv[1:]
    if any(a.split("=")[0] in HELP_FLAGS for a in args):
        print(help_text(program, _config_path(args, program.config_flag)))
        sys.exit(0)
    if program.config_module is not None:
        path = _config_path(args, program.config_flag)
        if path is not None:
            config = load_config_file(path)
            check_kind(config, path, program)
            for key in _override_keys(args, program.config_flag):
                check_field(config, key)
    try:
        return flags.FLAGS(argv)
    except flags.Error as err:
        fail(_flag_error(err))
    except Exception as err:  # noqa: BLE001 - any parser failure becomes one line
        fail(f"could not read the command line ({type(err).__name__}: {err}); --help lists "
             "the flags")


_PARSE_ERRORS = {"invalid literal for int()": "expected an integer",
                 "could not convert string to float": "expected a number",
                 "Non-boolean argument": "expected true or false",
                 "Error while parsing string": "not a tuple: quote it, e.g. '(3,3,2)'"}


def _flag_error(err: Exception) -> str:
    text = str(err).split("\n")[0].strip()
    if text.startswith("flag "):
        text = text[len("flag "):]
    for found, meaning in _PARSE_ERRORS.items():
        if found in text:
            return f"{text.split(': ')[0]}: {meaning} (--help lists the fields)"
    if required := re.search(r"Flag (--\S+) must have a value other than None", text):
        return f"{required.group(1)} is required; --help shows an example"
    return f"{text} (--help lists the flags)"


def _config_path(args: Sequence[str], name: str) -> str | None:
    for i, a in enumerate(args):
        if a.startswith(f"--{name}="):
            return a.split("=", 1)[1]
        if a == f"--{name}" and i + 1 < len(args):
            return args[i + 1]
    return None


def _override_keys(args: Sequence[str], name: str) -> list[str]:
    prefix = f"--{name}."
    return [a[len(prefix):].split("=")[0] for a in args if a.startswith(prefix)]


def config_files_near(path: str) -> list[str]:
    """The config files a user may have meant: `*.py` beside `path`, else in ./configs."""
    for folder in (os.path.dirname(path) or ".", "configs"):
        found = sorted(f for f in glob.glob(os.path.join(folder, "*.py"))
                       if not os.path.basename(f).startswith("_"))
        if found:
            return found
    return []


def load_config_file(path: str) -> ml_collections.ConfigDict:
    """The ConfigDict of `get_config()` in the Python file `path`, or one error line."""
    if not os.path.isfile(path):
        near = config_files_near(path)
        fail(f"config file {path!r} not found; "
             + (f"configs that exist: {', '.join(near)}" if near else
                "pass a Python file with get_config(), e.g. configs/quick.py"))
    try:
        spec = importlib.util.spec_from_file_location("_prdarts_config", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        config = module.get_config()
    except Exception as err:  # noqa: BLE001 - a broken config file is the user's to fix
        where = f" (line {err.lineno})" if isinstance(err, SyntaxError) else ""
        fail(f"config file {path!r} could not be loaded{where}: {type(err).__name__}: {err}")
    if not isinstance(config, ml_collections.ConfigDict):
        fail(f"config file {path!r}: get_config() must return an ml_collections.ConfigDict")
    return config


def check_kind(config: ml_collections.ConfigDict, path: str, program: Program) -> None:
    """One error line when the file is a config of another program (a search config given to
    `train`, say): it lacks fields the program's base config has."""
    base, _ = program.base_and_docs()
    missing = sorted(set(flatten(base)) - set(flatten(config)))
    if missing:
        what = program.config_module.split(".")[-2]
        shown = ", ".join(missing[:3]) + (", …" if len(missing) > 3 else "")
        fail(f"config file {path!r} is not a {what} config (it has no {shown}); "
             f"`{what}` takes {_CONFIG_EXAMPLES.get(what, 'its own configs')}")


_CONFIG_EXAMPLES = {"search": "configs/quick.py, configs/dl.py, configs/dr.py or configs/ur.py",
                    "train": "configs/train_digits.py, configs/train_cifar10.py or "
                             "configs/train_cifar100.py"}


def check_field(config: ml_collections.ConfigDict, key: str) -> None:
    """One error line naming `key` and the closest valid fields, unless the config has it."""
    fields = flatten(config)
    groups = {k.rsplit(".", 1)[0] for k in fields if "." in k}
    if key in fields or key in groups:
        return
    leaf = key.rsplit(".", 1)[-1]
    close = difflib.get_close_matches(key, list(fields), n=3, cutoff=0.6)
    close += [k for k in fields if k.rsplit(".", 1)[-1] in
              difflib.get_close_matches(leaf, [f.rsplit(".", 1)[-1] for f in fields], n=3,
                                        cutoff=0.75) and k not in close]
    hint = f"did you mean {', '.join(f'config.{k}' for k in close[:3])}? " if close else ""
    fail(f"--config.{key}: the config has no field {key!r}; {hint}(--help lists the fields)")


def help_text(program: Program, config_path: str | None) -> str:
    """The CLI's docstring, its flags and, for a `--config` program, every config field with
    its default (from `config_path` when given, else the base config) and meaning."""
    lines = [program.doc.strip(), "", "flags:"]
    for name in program.flag_names:
        flag = flags.FLAGS[name]
        default = "" if flag.default in (None, "", False) else f" (default {flag.default!r})"
        lines.append(f"  --{name}: {flag.help}{default}")
    if program.config_module is None:
        return "\n".join(lines)
    base, docs = program.base_and_docs()
    config = load_config_file(config_path) if config_path else base
    source = config_path or "the base config"
    lines += ["", f"config fields (--config.<field>=value; defaults from {source}):"]
    values = flatten(config)
    width = max(len(k) for k in values) + 2
    for key, value in values.items():
        doc = docs.get(key, "")
        lines.append(f"  {key:<{width}} {_show(value):<14} {doc}".rstrip())
    tuples = [(k, v) for k, v in values.items() if isinstance(v, tuple)]
    if tuples:
        key, value = tuples[0]
        lines += ["", f"Tuples as strings: --config.{key}='{_show(value)}'."]
    return "\n".join(lines)


def _show(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, tuple):
        return "(" + ",".join(map(str, value)) + ")"
    return repr(value) if isinstance(value, str) else str(value)


class ArgumentParser(argparse.ArgumentParser):
    """argparse for the CLIs without `--config` (report, collect, space, grid): a mistake is
    one `error:` line, exit code 2, instead of the usage block."""

    def error(self, message: str) -> NoReturn:
        fail(f"{message} (--help lists the arguments)")
