"""Fabricated-but-valid workdirs for the launcher and collector tests, made without training.

A search is a copy of `tests/fixtures/quick_run` (the real output of `make run` with configs/quick.py)
with its config's space and seed changed; a retraining has the config of configs/train_digits.py,
a metrics.jsonl in the format training.py writes, and a results.json written by
`training.summarize` itself, with the real parameter count of the network.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
from typing import Sequence

from configs import train_digits  # noqa: E402  (tiny_search put the repository on sys.path)
from prdarts_jax.runtime.metrics import MetricsWriter
from prdarts_jax.space.genotypes import Genotype, save_genotype
from tests.helpers import ROOT

QUICK_RUN = os.path.join(ROOT, "tests", "fixtures", "quick_run")


def fake_search(workdir: str, space: str = "DL", seed: int = 0,
                genotype: Genotype | None = None, finished: bool = True) -> str:
    """A search workdir; `genotype` replaces the quick run's; unfinished: no genotype.json."""
    shutil.copytree(QUICK_RUN, workdir)
    path = os.path.join(workdir, "config.json")
    with open(path) as f:
        config = json.load(f)
    config.update(space=space, seed=seed)
    with open(path, "w") as f:
        json.dump(config, f, indent=1)
    if genotype is not None:
        save_genotype(genotype, os.path.join(workdir, "genotype.json"))
    if not finished:
        os.remove(os.path.join(workdir, "genotype.json"))
    return workdir


def search_seconds(workdir: str = QUICK_RUN) -> float:
    """The summed `seconds` of the epoch records, read here independently of the collector."""
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return sum(r["seconds"] for r in map(json.loads, f) if r["type"] == "epoch")


def train_config(genotype: str, dataset: str, seed: int, epochs: int = 6):
    config = train_digits.get_config()
    config.update(dict(genotype=genotype, dataset=dataset, seed=seed, epochs=epochs))
    return config


@functools.lru_cache(maxsize=None)
def _params(genotype_json: str, dataset: str) -> int:
    from prdarts_jax.data import dataset_info
    from prdarts_jax.models.network import param_count
    config = train_digits.get_config()
    info = dataset_info(dataset)
    return param_count(Genotype.from_json(json.loads(genotype_json)), info.num_classes,
                       config.channels, config.layers, info.image_shape)


def fake_training(workdir: str, genotype: str, dataset: str, seed: int, error: float,
                  finished: bool = True) -> str:
    """A retraining workdir whose last epochs all have test error `error` (a fraction);
    unfinished: config and metrics but no results.json."""
    from prdarts_jax.space.genotypes import load_genotype
    from prdarts_jax.train.loop import summarize

    config = train_config(genotype, dataset, seed)
    os.makedirs(workdir)
    with open(os.path.join(workdir, "config.json"), "w") as f:
        f.write(config.to_json_best_effort(indent=1))
    cells = load_genotype(genotype)
    save_genotype(cells, os.path.join(workdir, "genotype.json"))
    metrics_path = os.path.join(workdir, "metrics.jsonl")
    writer = MetricsWriter(metrics_path)
    for epoch in range(config.epochs):
        record = {"epoch": epoch, "lr": 0.05, "drop_path": 0.0, "train_loss": 1.0,
                  "train_acc": 0.5, "steps": 3}
        if (epoch + 1) % config.eval_every == 0 or epoch >= config.epochs - config.final_epochs:
            record.update(test_loss=0.5, test_acc=1 - error)
        writer.write({**record, "seconds": 1.0})
    if finished:
        params = _params(json.dumps(cells.to_json()), dataset)
        with open(os.path.join(workdir, "results.json"), "w") as f:
            json.dump(summarize(metrics_path, config, params, cells), f, indent=1)
    return workdir


def _flags(argv: Sequence[str]) -> dict[str, str]:
    out, args = {}, list(argv)
    for i, a in enumerate(args):
        if a.startswith("--config.") and "=" in a:
            key, value = a[len("--config."):].split("=", 1)
            out[key] = value
        elif a in ("--config", "--workdir"):
            out[a[2:]] = args[i + 1]
    return out


class FakeRunner:
    """A grid runner that fabricates each job's outputs instead of running it. Errors of the
    retrainings are `error_of(workdir)`; commands whose workdir is in `fail` exit with 1."""

    def __init__(self, error_of=lambda workdir: 0.05, fail: Sequence[str] = ()):
        self.commands: list[list[str]] = []
        self.error_of = error_of
        self.fail = set(fail)

    def __call__(self, argv: Sequence[str]) -> int:
        self.commands.append(list(argv))
        f = _flags(argv)
        if f["workdir"] in self.fail:
            return 1
        if argv[2] == "prdarts_jax.search":
            space = f.get("space") or os.path.basename(f["config"])[:-3].upper()
            fake_search(f["workdir"], space, int(f["seed"]))
        else:
            dataset = f.get("dataset") or os.path.basename(f["config"])[len("train_"):-3]
            fake_training(f["workdir"], f["genotype"], dataset, int(f["seed"]),
                          self.error_of(f["workdir"]))
        return 0
