"""The ablation's plan: variants × seeds as grid jobs with the right overrides, workdirs,
dependencies and job names unique over the ablation (so the SLURM plan chains them)."""

import os

import pytest

from prdarts_jax.ablation.configs import entry_configs
from prdarts_jax.ablation.plan import AblationSpec, build_plan, jobs_of
from prdarts_jax.ablation.variants import parse_variants
from prdarts_jax.grid import slurm as grid_slurm
from tests.helpers import ROOT


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch):
    monkeypatch.chdir(ROOT)   # config files are relative to the repository root


def spec(root="r", seeds=(0, 1), text="uniform,weighted+skips", **kw):
    variants = tuple(parse_variants(text, entry_configs("configs/quick.py", ())))
    return AblationSpec(root=root, config="configs/quick.py", space="DL", dataset="digits",
                        variants=variants, seeds=seeds, search_set=("channels=4",), **kw)


def test_variants_times_seeds_become_searches_then_retrainings():
    jobs = build_plan(spec(train_set=("epochs=1",)))
    assert [j.name for j in jobs] == [
        "uniform/search/dl/seed_0", "uniform/search/dl/seed_1",
        "uniform/train/dl_s0/digits/seed_0", "uniform/train/dl_s1/digits/seed_0",
        "weighted+skips/search/dl/seed_0", "weighted+skips/search/dl/seed_1",
        "weighted+skips/train/dl_s0/digits/seed_0", "weighted+skips/train/dl_s1/digits/seed_0"]
    search = jobs[5]
    assert search.workdir == os.path.join("r", "weighted+skips", "search", "dl", "seed_1")
    assert search.args == (
        "-m", "prdarts_jax.search", "--config", "configs/quick.py", "--workdir",
        search.workdir, "--config.seed=1", "--config.space=DL", "--config.channels=4",
        "--config.morph_selection=weighted", "--config.genotype_max_skips=2")
    train = jobs[7]
    assert train.after is search
    assert train.args == (
        "-m", "prdarts_jax.train", "--config", "configs/train_short_digits.py",
        f"--config.genotype={search.workdir}/genotype.json", "--workdir", train.workdir,
        "--config.seed=0", "--config.epochs=1")
    mine = jobs_of(jobs, spec().variants[0])
    assert [j.name for j in mine["search"]] == ["uniform/search/dl/seed_0",
                                               "uniform/search/dl/seed_1"]


def test_slurm_plan_chains_each_retraining_to_its_own_search():
    jobs = build_plan(spec())
    subs = grid_slurm.plan(jobs)
    assert [(s.stage, s.array, s.after) for s in subs] == [
        ("search", "0-3", None), ("train", "0", 0), ("train", "1", 1), ("train", "2", 2),
        ("train", "3", 3)]


def test_missing_retraining_config_is_one_line():
    with pytest.raises(FileNotFoundError, match="configs/nope_digits.py not found"):
        build_plan(spec(train_config="configs/nope_{dataset}.py"))
