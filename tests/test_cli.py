"""Every class of user mistake through the real command lines: one `error:` line naming the fix,
exit code 2, no traceback and nothing written; `--help` exits 0.

The processes run concurrently (each mostly imports), so the module costs about as much as the
slowest few.
"""

import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.helpers import ROOT

FIXTURE = os.path.join(ROOT, "tests", "fixtures", "quick_run")


def _workdirs(base):
    """Workdirs of every kind a user may point a command at by mistake."""
    search = base / "search"
    shutil.copytree(FIXTURE, search)
    from configs import quick
    (search / "config.json").write_text(quick.get_config().to_json_best_effort(indent=1))
    train = base / "train"
    train.mkdir()
    (train / "config.json").write_text(json.dumps({"genotype": "DL2", "epochs": 1}))
    other = base / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    (base / "a_file").write_text("")
    (base / "empty").mkdir()
    return {"search": str(search), "train": str(train), "other": str(other),
            "file": str(base / "a_file"), "empty": str(base / "empty"), "new": str(base / "new"),
            "nodata": str(base / "nodata")}


def _cases(w):
    search = ["-m", "prdarts_jax.search", "--config", "configs/quick.py"]
    train = ["-m", "prdarts_jax.train", "--config", "configs/train_digits.py"]
    new = ["--workdir", w["new"]]
    return {
        "unknown field": (search + new + ["--config.epochz=3"],
                          "no field 'epochz'; did you mean config.schedule.epochs"),
        "unknown nested field": (search + new + ["--config.batch.mni=3"],
                                 "did you mean config.batch.min"),
        "missing config file": (["-m", "prdarts_jax.search", "--config", "configs/nope.py"]
                                + new, "configs that exist: configs/dl.py"),
        "not an int": (search + new + ["--config.channels=abc"],
                       "--config.channels=abc: expected an integer"),
        "not a tuple of ints": (search + new + ["--config.schedule.epochs=abc"],
                                "config.schedule.epochs=('abc',) must be a tuple of ints"),
        "not a bool": (search + new + ["--config.batch.variable=maybe"], "expected true or false"),
        "unknown space": (search + new + ["--config.space=XL"], "config.space='XL' is unknown"),
        "no workdir": (search, "--workdir is required"),
        "stray argument": (search + new + ["extra"], "unexpected arguments ['extra']"),
        "unknown flag": (search + new + ["--bogus"], "Unknown command line flag 'bogus'"),
        "too many devices": (search + new + ["--config.num_devices=3"],
                             "num_devices=3 but 1 devices are visible"),
        "search into a retraining": (search + ["--workdir", w["train"]],
                                     "holds a retraining, not a search"),
        "search into other files": (search + ["--workdir", w["other"]],
                                    "holds other files but no search run"),
        "search into a file": (search + ["--workdir", w["file"]], "is a file, not a directory"),
        "unwritable workdir": (search + ["--workdir", "/proc/prdarts/x"], "cannot write into"),
        "finished search, other config": (search + ["--workdir", w["search"], "--config.seed=3"],
                                          "holds a finished search whose config differs "
                                          "from this one (seed: 0 -> 3)"),
        "dataset not prepared": (["-m", "prdarts_jax.search", "--config", "configs/dl.py",
                                  "--workdir", w["new"], f"--config.data_dir={w['nodata']}"],
                                 "CIFAR-10 is not prepared"),
        "data_dir is a file": (search + new + [f"--config.data_dir={w['file']}"],
                               "is a file; point it at a TFDS data folder"),
        "data_dir cannot be made": (train + new + ["--config.data_dir=/proc/prdarts/data"],
                                    "config.data_dir /proc/prdarts/data: cannot write into"),
        "unknown dataset": (train + new + ["--config.dataset=mnist"],
                            "config.dataset='mnist' is unknown"),
        "search config to train": (["-m", "prdarts_jax.train", "--config", "configs/quick.py"]
                                   + new, "'configs/quick.py' is not a train config"),
        "train config to search": (["-m", "prdarts_jax.search", "--config",
                                    "configs/train_digits.py"] + new,
                                   "'configs/train_digits.py' is not a search config"),
        "empty workdir": (search + ["--workdir", ""], "--workdir is empty"),
        "schedule lengths": (search + new + ["--config.schedule.epochs=(2,2)"],
                             "need one entry per cycle, got lengths"),
        "unknown genotype": (train + new + ["--config.genotype=XX"],
                             "unknown genotype 'XX': neither a built-in name"),
        "genotype is a workdir": (train + new + [f"--config.genotype={w['search']}"],
                                  f"is a directory; pass {w['search']}/genotype.json"),
        "retrain into a search": (train + ["--workdir", w["search"]],
                                  "holds a search, not a retraining; retrain its genotype in a "
                                  "new workdir: python -m prdarts_jax.train --config "
                                  "configs/train_digits.py --config.genotype="),
        "train without config": (["-m", "prdarts_jax.train"] + new, "--config is required"),
        "evaluate a search": (["-m", "prdarts_jax.evaluate", "--workdir", w["search"]],
                              "holds a search, not a retraining; retrain its genotype"),
        "evaluate nothing": (["-m", "prdarts_jax.evaluate", "--workdir", w["empty"]],
                             "holds no retraining"),
        "report of nothing": (["-m", "prdarts_jax.report", "--workdir", w["empty"]],
                              "is not a search workdir"),
        "collect nothing": (["-m", "prdarts_jax.collect", w["new"]], "is not a directory"),
        "grid without a mode": (["-m", "prdarts_jax.grid", "--root", w["new"]],
                                "one of the arguments --local --slurm is required"),
        "space steps": (["-m", "prdarts_jax.space", "abc"], "must be an integer 0..20"),
    }


HELP = {"search": "schedule.epochs", "train": "aux_weight", "evaluate": "--workdir",
        "report": "--genotype", "collect": "--with_paper", "grid": "--spaces", "space": "steps"}


SCRIPTS = {"prdarts-search": "schedule.epochs", "prdarts-train": "aux_weight",
           "prdarts-evaluate": "--data_dir", "prdarts-report": "--genotype"}
"""The console scripts the package installs (pyproject.toml), beside this Python."""


def _run(args, env=None):
    env = {**os.environ, "PRDARTS_HOST_MEMORY": "off", "JAX_PLATFORMS": "cpu", **(env or {})}
    command = args if args[0] in SCRIPTS else [sys.executable, *args]
    if command[0] in SCRIPTS:
        command = [os.path.join(os.path.dirname(sys.executable), command[0]), *command[1:]]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    w = _workdirs(tmp_path_factory.mktemp("cli"))
    cases = _cases(w)
    helps = {f"help {name}": ["-m", f"prdarts_jax.{name}", "--help"] for name in HELP}
    helps.update({f"help {script}": [script, "--help"] for script in SCRIPTS})
    with ThreadPoolExecutor(4) as pool:
        done = dict(zip(list(cases) + list(helps),
                        pool.map(_run, [a for a, _ in cases.values()] + list(helps.values()))))
    return w, cases, done


@pytest.mark.parametrize("case", list(_cases({k: f"<{k}>" for k in (
    "search", "train", "other", "file", "empty", "new", "nodata")})))
def test_each_mistake_is_one_error_line(outcomes, case):
    w, cases, done = outcomes
    proc, expected = done[case], cases[case][1]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert len(errors) == 1 and expected in errors[0], proc.stderr[-2000:]
    assert not os.path.exists(w["new"]), "a failed start wrote its workdir"


def _contents(folder):
    return {name: open(os.path.join(folder, name), "rb").read()
            for name in sorted(os.listdir(folder))
            if os.path.isfile(os.path.join(folder, name))}


def test_a_failed_start_leaves_existing_workdirs_as_they_were(outcomes):
    w, _, _ = outcomes
    assert _contents(w["train"]) == {"config.json": b'{"genotype": "DL2", "epochs": 1}'}
    assert _contents(w["other"]) == {"notes.txt": b"mine"}
    search = _contents(w["search"])
    from configs import quick
    assert search.pop("config.json") == quick.get_config().to_json_best_effort(indent=1).encode()
    assert search == {k: v for k, v in _contents(FIXTURE).items() if k != "config.json"}


@pytest.mark.parametrize("name", list(HELP))
def test_help_exits_0_and_says_what_there_is(outcomes, name):
    proc = outcomes[2][f"help {name}"]
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert HELP[name] in proc.stdout


@pytest.mark.parametrize("script", list(SCRIPTS))
def test_console_scripts_are_installed_and_answer(outcomes, script):
    proc = outcomes[2][f"help {script}"]
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert SCRIPTS[script] in proc.stdout


def test_a_bad_environment_setting_is_one_line_before_any_work(outcomes):
    w, _, _ = outcomes
    proc = _run(["-m", "prdarts_jax.train", "--config", "configs/train_digits.py",
                 "--workdir", w["new"]], env={"PRDARTS_HEARTBEAT_SECONDS": "soon"})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "error: PRDARTS_HEARTBEAT_SECONDS='soon' is not a number" in proc.stderr
    assert not os.path.exists(w["new"])


def test_a_finished_search_with_its_own_config_has_nothing_to_do(outcomes):
    w, _, _ = outcomes
    proc = _run(["-m", "prdarts_jax.search", "--config", "configs/quick.py", "--workdir",
                 w["search"]])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "nothing to do" in proc.stderr
